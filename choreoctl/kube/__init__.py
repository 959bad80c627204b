"""Talking to Kubernetes: kubeconfig/in-cluster endpoints and the async API client."""

from choreoctl.kube.client import KubeClient, ResourceInfo
from choreoctl.kube.config import Endpoint, list_contexts

__all__ = ["Endpoint", "KubeClient", "ResourceInfo", "list_contexts"]
