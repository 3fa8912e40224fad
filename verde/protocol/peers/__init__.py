"""How verde talks to providers: message types, the peer interface, the in-process transport.

The gRPC services (``arbiter/``) implement the same ``ProviderPeer`` interface over the
network, so the dispute logic in ``verde.protocol.dispute`` runs unchanged over either.
"""

from verde.protocol.peers.errors import PeerError, PeerTimeout
from verde.protocol.peers.local import LocalPeer
from verde.protocol.peers.messages import Answer, Query, TensorBlob
from verde.protocol.peers.protocol import ProviderPeer, StateExchangePeer
from verde.protocol.peers.state import StateEntries, verify_state_entries

__all__ = ["Answer", "LocalPeer", "PeerError", "PeerTimeout", "ProviderPeer", "Query",
           "StateEntries", "StateExchangePeer", "TensorBlob", "verify_state_entries"]
