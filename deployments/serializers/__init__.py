"""Request bodies (:mod:`.inputs`) and responses (:mod:`.outputs`) of the deployments API."""

from deployments.serializers.inputs import (
    CreateDeploymentRequestSerializer,
    DeploymentConfigurationPatchSerializer,
    DeploymentConfigurationSerializer,
    PatchDeploymentRequestSerializer,
    ScaleRequestSerializer,
    UpdateDeploymentRequestSerializer,
)
from deployments.serializers.outputs import (
    DeploymentConfigSerializer,
    DeploymentListItemSerializer,
    DeploymentListResponseSerializer,
    DeploymentResponseSerializer,
    DeploymentSerializer,
)

__all__ = [
    "CreateDeploymentRequestSerializer",
    "DeploymentConfigSerializer",
    "DeploymentConfigurationPatchSerializer",
    "DeploymentConfigurationSerializer",
    "DeploymentListItemSerializer",
    "DeploymentListResponseSerializer",
    "DeploymentResponseSerializer",
    "DeploymentSerializer",
    "PatchDeploymentRequestSerializer",
    "ScaleRequestSerializer",
    "UpdateDeploymentRequestSerializer",
]
