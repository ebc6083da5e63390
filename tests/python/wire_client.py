"""A client of the master's gRPC services that the project did not write: Python grpcio with
stubs generated from proto/ by protoc. It drives Namespace and Admin calls against a running
master, then sends it hostile input (an oversized message, bytes that are no message, names
no filesystem allows, a parent that does not exist) and checks each refusal's status and that
nothing changed. Then it asks a chunkserver for a chunk without a token and with a forged
one, which must be refused. It prints one line per check, `ok ...`, or exits non-zero with
what differed.

usage: wire_client.py MASTER_ADDR STUB_DIR CHUNKSERVER_ADDR
"""

import errno
import sys

sys.path.insert(0, sys.argv[2])

import grpc  # noqa: E402

from checks import expect, failure  # noqa: E402

import admin_pb2  # noqa: E402
import admin_pb2_grpc  # noqa: E402
import chunkserver_pb2  # noqa: E402
import chunkserver_pb2_grpc  # noqa: E402
import namespace_pb2  # noqa: E402
import namespace_pb2_grpc  # noqa: E402
import types_pb2  # noqa: E402

ROOT = 1


channel = grpc.insecure_channel(sys.argv[1])
namespace = namespace_pb2_grpc.NamespaceStub(channel)
admin = admin_pb2_grpc.AdminStub(channel)

config = namespace.GetClusterConfig(types_pb2.Empty(), timeout=10)
expect("cluster replication", config.replication, 3)

made = namespace.MakeNode(
    namespace_pb2.MakeNodeRequest(
        parent=ROOT, name=b"from-python", kind=types_pb2.FILE_KIND_DIRECTORY,
        perm=0o750, uid=1000, gid=1000, exclusive=True,
    ),
    timeout=10,
)
expect("mkdir kind", made.attr.kind, types_pb2.FILE_KIND_DIRECTORY)
expect("mkdir perm", made.attr.perm, 0o750)

looked_up = namespace.Lookup(namespace_pb2.LookupRequest(parent=ROOT, name=b"from-python"))
expect("lookup finds the new inode", looked_up.attr.ino, made.attr.ino)

listing = namespace.ReadDir(namespace_pb2.ReadDirRequest(ino=ROOT, limit=100, open=True))
expect("listing", [e.name for e in listing.entries if e.name == b"from-python"], [b"from-python"])

code, err = failure(lambda: namespace.Lookup(namespace_pb2.LookupRequest(parent=ROOT, name=b"nope")))
expect("missing name", (code, err), (grpc.StatusCode.NOT_FOUND, errno.errorcode[errno.ENOENT]))

code, err = failure(lambda: namespace.MakeNode(namespace_pb2.MakeNodeRequest(
    parent=ROOT, name=b"from-python", kind=types_pb2.FILE_KIND_DIRECTORY, perm=0o755,
    exclusive=True)))
expect("existing name", (code, err), (grpc.StatusCode.ALREADY_EXISTS, errno.errorcode[errno.EEXIST]))

status = admin.ClusterStatus(types_pb2.Empty(), timeout=10)
expect("servers", len(status.servers), 3)
expect("active servers", {s.state for s in status.servers}, {admin_pb2.SERVER_STATE_ACTIVE})

# Hostile input: each refusal is a clear status, and the master goes on serving, unchanged.
code, _ = failure(lambda: namespace.Lookup(
    namespace_pb2.LookupRequest(parent=ROOT, name=b"x" * (5 << 20)), timeout=10))
expect("a 5 MiB request is refused before it is decoded", code, grpc.StatusCode.OUT_OF_RANGE)

raw_lookup = channel.unary_unary("/dfs.Namespace/Lookup")
code, _ = failure(lambda: raw_lookup(b"\xff\xff\xff\xff\xff", timeout=10))
expect("bytes that are no message", code, grpc.StatusCode.INTERNAL)


def make_dir(parent, name):
    return lambda: namespace.MakeNode(namespace_pb2.MakeNodeRequest(
        parent=parent, name=name, kind=types_pb2.FILE_KIND_DIRECTORY, perm=0o755,
        exclusive=True), timeout=10)


code, err = failure(make_dir(ROOT, b"n" * 256))
expect("a 256-byte name", (code, err),
       (grpc.StatusCode.INVALID_ARGUMENT, errno.errorcode[errno.ENAMETOOLONG]))
for bad in (b"a/b", b"nul\0byte", b""):
    code, err = failure(make_dir(ROOT, bad))
    expect(f"the name {bad!r}", (code, err),
           (grpc.StatusCode.INVALID_ARGUMENT, errno.errorcode[errno.EINVAL]))
code, err = failure(make_dir(2**63, b"orphan"))
expect("a parent that does not exist", (code, err),
       (grpc.StatusCode.NOT_FOUND, errno.errorcode[errno.ENOENT]))

listing = namespace.ReadDir(namespace_pb2.ReadDirRequest(ino=ROOT, limit=100, open=True), timeout=10)
expect("the root after the refusals", [e.name for e in listing.entries], [b"from-python"])

# A chunkserver serves no chunk without the master's token for it: none, a forged one (any
# MAC, a far expiry), or one for a read used to write. Nothing is created.
chunkserver = chunkserver_pb2_grpc.ChunkserverStub(grpc.insecure_channel(sys.argv[3]))
forged = types_pb2.ChunkToken(chunk_id=1, version=1, access=3, expires_unix_ms=2**62,
                              key_epoch=0, mac=b"\0" * 32)
REFUSED = (grpc.StatusCode.PERMISSION_DENIED, "ETOKEN")


def read_chunk(**token):
    request = chunkserver_pb2.ReadChunkRequest(chunk_id=1, version=1, offset=0, length=10, **token)
    return lambda: list(chunkserver.ReadChunk(request, timeout=10))


def write_chunk(**token):
    header = chunkserver_pb2.WriteHeader(chunk_id=2**40, version=1, offset=0, **token)
    messages = [chunkserver_pb2.WriteChunkRequest(header=header),
                chunkserver_pb2.WriteChunkRequest(data=b"forged")]
    return lambda: chunkserver.WriteChunk(iter(messages), timeout=10)


expect("a chunk read without a token", failure(read_chunk()), REFUSED)
expect("a chunk read with a forged token", failure(read_chunk(token=forged)), REFUSED)
expect("a chunk write without a token", failure(write_chunk()), REFUSED)
expect("a chunk write with a forged token", failure(write_chunk(token=forged)), REFUSED)
expect("a replica stat without a token",
       failure(lambda: chunkserver.StatReplica(
           chunkserver_pb2.StatReplicaRequest(chunk_id=2**40), timeout=10)),
       REFUSED)
