"""The provider stage: requests in, answers out — real time or batch behind one interface, with the response
cache in front so nothing is paid for twice. Only :mod:`evalkit.providers.anthropic` talks to the SDK."""
