"""The cluster gateway: agents dial in on the TLS port, the control plane proxies through it."""
