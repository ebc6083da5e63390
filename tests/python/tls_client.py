"""A client of a cluster over mutual TLS that the project did not write: Python grpcio with
stubs generated from proto/ and its own TLS stack (BoringSSL), against certificates made by
`dfs ca init` and `dfs cert issue`. A client certificate of the cluster's CA is served; a
certificate of another CA and no certificate at all get no connection; a client certificate
may not register as a chunkserver; a read-only certificate reads but its changes are refused
(EROFS) by the master, and its chunk token opens the chunk for reading only. It prints one line
per check, `ok ...`, or exits non-zero with what differed.

usage: tls_client.py MASTER_ADDR STUB_DIR CERT_DIR
CERT_DIR holds ca.pem, and NAME.pem and NAME.key for client, stranger (another CA), reader
(read-only).
"""

import errno
import os
import sys

sys.path.insert(0, sys.argv[2])

import grpc  # noqa: E402

from checks import expect, failure  # noqa: E402

import admin_pb2_grpc  # noqa: E402
import chunkserver_pb2  # noqa: E402
import chunkserver_pb2_grpc  # noqa: E402
import files_pb2  # noqa: E402
import files_pb2_grpc  # noqa: E402
import namespace_pb2  # noqa: E402
import namespace_pb2_grpc  # noqa: E402
import registry_pb2  # noqa: E402
import registry_pb2_grpc  # noqa: E402
import types_pb2  # noqa: E402

ROOT = 1
MASTER, CERTS = sys.argv[1], sys.argv[3]


def read(name):
    with open(os.path.join(CERTS, name), "rb") as f:
        return f.read()


def channel(addr, name):
    """A channel to `addr` presenting certificate `name` (None: no certificate)."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=read("ca.pem"),
        private_key=read(f"{name}.key") if name else None,
        certificate_chain=read(f"{name}.pem") if name else None,
    )
    return grpc.secure_channel(addr, creds)


client = channel(MASTER, "client")
namespace = namespace_pb2_grpc.NamespaceStub(client)
status = admin_pb2_grpc.AdminStub(client).ClusterStatus(types_pb2.Empty(), timeout=10)
expect("a client certificate is served", len(status.servers), 3)

for name, what in (("stranger", "another CA's certificate"), (None, "no certificate")):
    stub = namespace_pb2_grpc.NamespaceStub(channel(MASTER, name))
    code, _ = failure(lambda: stub.GetClusterConfig(types_pb2.Empty(), timeout=5))
    expect(f"{what} gets no connection", code, grpc.StatusCode.UNAVAILABLE)

registry = registry_pb2_grpc.RegistryStub(client)
code, _ = failure(lambda: registry.RegisterChunkserver(
    registry_pb2.RegisterChunkserverRequest(addr="127.0.0.1:1", storage_uuid="python"),
    timeout=10))
expect("a client certificate may not register as a chunkserver", code,
       grpc.StatusCode.PERMISSION_DENIED)

# The read-only certificate: the file the test wrote is readable, nothing can be changed.
reader = channel(MASTER, "reader")
reader_ns = namespace_pb2_grpc.NamespaceStub(reader)
found = reader_ns.Lookup(namespace_pb2.LookupRequest(parent=ROOT, name=b"f"), timeout=10)
expect("a read-only certificate looks up", found.attr.size, 11)
code, err = failure(lambda: reader_ns.MakeNode(namespace_pb2.MakeNodeRequest(
    parent=ROOT, name=b"from-reader", kind=types_pb2.FILE_KIND_DIRECTORY, perm=0o755,
    exclusive=True), timeout=10))
expect("a read-only certificate may not mkdir", (code, err),
       (grpc.StatusCode.PERMISSION_DENIED, errno.errorcode[errno.EROFS]))

chunks = files_pb2_grpc.FilesStub(reader).GetChunks(
    files_pb2.GetChunksRequest(ino=found.attr.ino), timeout=10).chunks
chunk = chunks[0]
chunkserver = chunkserver_pb2_grpc.ChunkserverStub(channel(chunk.replicas[0].addr, "reader"))
data = b"".join(piece.data for piece in chunkserver.ReadChunk(chunkserver_pb2.ReadChunkRequest(
    chunk_id=chunk.chunk_id, version=chunk.version, offset=0, length=chunk.length,
    token=chunk.token), timeout=10))
expect("its token reads the chunk", data, b"hello world")
header = chunkserver_pb2.WriteHeader(chunk_id=chunk.chunk_id, version=chunk.version,
                                     token=chunk.token)
messages = [chunkserver_pb2.WriteChunkRequest(header=header),
            chunkserver_pb2.WriteChunkRequest(data=b"HELLO")]
code, err = failure(lambda: chunkserver.WriteChunk(iter(messages), timeout=10))
expect("its token does not write the chunk", (code, err),
       (grpc.StatusCode.PERMISSION_DENIED, "ETOKEN"))

listing = namespace.ReadDir(namespace_pb2.ReadDirRequest(ino=ROOT, limit=100, open=True),
                            timeout=10)
expect("the root after the refusals", [e.name for e in listing.entries], [b"f"])
