//! `MasterClient` against fake masters on loopback ports: it follows the leader a member names
//! (even one missing from its list), goes round the list past a master that is down and one
//! that knows no leader, returns a master's own errors as they are, and fails with EIO once its
//! RPC timeout has passed without an answer.
//!
//! The fakes serve only the `Xattrs` service, the smallest the client calls: which service a
//! call uses makes no difference to the path every call takes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dfs_client::MasterClient;
use dfs_proto::FsError;
use dfs_proto::masters::not_leader;
use dfs_proto::pb::xattrs_server::{Xattrs, XattrsServer};
use dfs_proto::pb::{Empty, GetAttrRequest, SetXattrRequest, XattrNames, XattrRequest, XattrValue};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// How a fake master treats every call.
#[derive(Clone)]
enum Role {
    /// Answers: `ListXattrs` with its own name, `GetXattr` with ENODATA.
    Leads(&'static str),
    /// Refuses as a member that is not the leader, naming the leader if it knows one.
    Follows(Option<String>),
}

#[derive(Clone)]
struct FakeMaster {
    role: Role,
    /// Calls it received, answered or refused.
    calls: Arc<AtomicUsize>,
}

impl FakeMaster {
    /// Serves a fake master with `role` on a loopback port: its address and call counter.
    async fn start(role: Role) -> (String, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let master = FakeMaster {
            role,
            calls: calls.clone(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(XattrsServer::new(master))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        (addr, calls)
    }

    /// The name it answers with, or its refusal.
    fn serve(&self) -> Result<&'static str, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match &self.role {
            Role::Leads(name) => Ok(name),
            Role::Follows(leader) => Err(not_leader(leader.as_deref())),
        }
    }
}

#[tonic::async_trait]
impl Xattrs for FakeMaster {
    async fn get_xattr(&self, _: Request<XattrRequest>) -> Result<Response<XattrValue>, Status> {
        self.serve()?;
        Err(FsError::NoData.into())
    }
    async fn set_xattr(&self, _: Request<SetXattrRequest>) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented("not served by this fake"))
    }
    async fn list_xattrs(
        &self,
        _: Request<GetAttrRequest>,
    ) -> Result<Response<XattrNames>, Status> {
        let name = self.serve()?;
        Ok(Response::new(XattrNames {
            names: vec![name.as_bytes().to_vec()],
        }))
    }
    async fn remove_xattr(&self, _: Request<XattrRequest>) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented("not served by this fake"))
    }
}

/// An address where nothing listens: connections to it are refused.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The name of the master that answered `ListXattrs`.
async fn who_answers(client: &MasterClient) -> Result<String, FsError> {
    let names = client.list_xattrs(1).await?;
    Ok(String::from_utf8(names[0].clone()).unwrap())
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn follows_the_leader_a_member_names_even_one_not_in_the_list() {
    let (leader, leader_calls) = FakeMaster::start(Role::Leads("leader")).await;
    let (follower, follower_calls) = FakeMaster::start(Role::Follows(Some(leader.clone()))).await;
    let client = MasterClient::new(&follower, TIMEOUT).unwrap();
    assert_eq!(client.leader_addr(), follower);

    assert_eq!(who_answers(&client).await.unwrap(), "leader");
    assert_eq!(client.leader_addr(), leader);
    // The next call goes to the leader directly, and so does a clone's.
    assert_eq!(who_answers(&client.clone()).await.unwrap(), "leader");
    assert_eq!(follower_calls.load(Ordering::SeqCst), 1);
    assert_eq!(leader_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn goes_round_the_list_past_a_master_down_and_one_without_a_leader() {
    let down = closed_port().await;
    let (electing, electing_calls) = FakeMaster::start(Role::Follows(None)).await;
    let (leader, _) = FakeMaster::start(Role::Leads("leader")).await;
    let client =
        MasterClient::new(&format!("{down}, http://{electing},{leader}"), TIMEOUT).unwrap();

    assert_eq!(who_answers(&client).await.unwrap(), "leader");
    assert_eq!(client.leader_addr(), leader);
    assert_eq!(electing_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_masters_own_error_is_returned_as_it_is() {
    let (leader, leader_calls) = FakeMaster::start(Role::Leads("leader")).await;
    let (other, other_calls) = FakeMaster::start(Role::Leads("other")).await;
    let client = MasterClient::new(&format!("{leader},{other}"), TIMEOUT).unwrap();

    let started = Instant::now();
    let err = client.get_xattr(1, b"user.none").await.unwrap_err();
    assert_eq!(err, FsError::NoData);
    assert!(started.elapsed() < Duration::from_secs(2));
    // Not retried anywhere: an error of the leader is the answer.
    assert_eq!(leader_calls.load(Ordering::SeqCst), 1);
    assert_eq!(other_calls.load(Ordering::SeqCst), 0);
    assert_eq!(client.leader_addr(), leader);
}

#[tokio::test]
async fn gives_up_with_eio_once_the_rpc_timeout_has_passed() {
    let down = closed_port().await;
    let (electing, electing_calls) = FakeMaster::start(Role::Follows(None)).await;
    let timeout = Duration::from_millis(400);
    let client = MasterClient::new(&format!("{down},{electing}"), timeout).unwrap();

    let started = Instant::now();
    let err = client.list_xattrs(1).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(&err, FsError::Unavailable(why) if why.contains("no master answered")));
    assert_eq!(err.errno(), libc::EIO);
    assert!(took >= timeout, "gave up after {took:?}");
    assert!(
        took < timeout + Duration::from_secs(1),
        "gave up after {took:?}"
    );
    // Round after round, with waits in between: more than one try, far fewer than a spin.
    let tries = electing_calls.load(Ordering::SeqCst);
    assert!((2..50).contains(&tries), "{tries} tries");
}
