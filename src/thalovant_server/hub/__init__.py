"""The hub runtime (data plane): sessions, per-hub routers, the embedded agent and its skills."""
