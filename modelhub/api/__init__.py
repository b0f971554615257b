"""Plumbing every API app shares: errors, auth glue, pagination, filters, schema, headers."""
