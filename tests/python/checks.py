"""What the Python clients of the tests share: a check that prints `ok WHAT` or exits with what
differed, and the status of a call that must fail."""

import sys

import grpc


def expect(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")
    print(f"ok {what}")


def failure(call):
    """The status code and dfs-errno metadata of a call that must fail."""
    try:
        call()
    except grpc.RpcError as err:
        meta = dict(err.trailing_metadata() or ())
        return err.code(), meta.get("dfs-errno")
    sys.exit("the call succeeded but should have failed")
