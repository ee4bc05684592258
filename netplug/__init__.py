"""netplug: networks for virtual machines on Kubernetes."""

__version__ = "0.1.0"
