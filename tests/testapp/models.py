"""A stand-in for a later app's model that protects a registered model from deletion."""

from django.db import models


class ModelDependent(models.Model):
    model = models.ForeignKey("catalog.ModelRegistry", on_delete=models.PROTECT, related_name="+")
