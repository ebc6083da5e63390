//! Fuzzing the decoders every peer's bytes go through: each wire message type, chunk tokens and
//! certificate fields, fed random bytes and valid encodings mutated (bits flipped, cut short,
//! bytes inserted, length prefixes inflated). Every input must be decoded or refused with an
//! error: no panic, no hang, and no allocation of what a length prefix claims (a message that
//! claims gigabytes is refused from the bytes actually there).
//!
//! A bounded run is part of the suite; `DFS_FUZZ_ITERATIONS=1000000 cargo test --release -p
//! dfs-proto --test hostile_input` runs a longer one. The seed is printed; `DFS_FUZZ_SEED`
//! replays a run.

use dfs_proto::fuzz::Rng;
use dfs_proto::pb;
use dfs_proto::tls::{Role, is_read_only, role_of};
use dfs_proto::token::{self, TokenSigner, TokenVerifier};
use prost::Message;

/// The run's generator and how many inputs each check tries.
fn setup(name: &str) -> (Rng, usize) {
    dfs_proto::fuzz::setup(name, 20_000)
}

/// `valid` changed in one of the ways a hostile or broken peer would.
fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut out = valid.to_vec();
    match rng.index(6) {
        0 => {
            // Flip a few bits.
            for _ in 0..=rng.index(4) {
                if !out.is_empty() {
                    let i = rng.index(out.len());
                    out[i] ^= 1 << rng.index(8);
                }
            }
        }
        1 => out.truncate(rng.index(out.len() + 1)),
        2 => {
            let at = rng.index(out.len() + 1);
            let len = 1 + rng.index(16);
            let junk = rng.bytes(len);
            out.splice(at..at, junk);
        }
        3 => {
            // A length-delimited field claiming far more than follows (a varint of ~2^62).
            let at = rng.index(out.len() + 1);
            out.splice(
                at..at,
                [0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f],
            );
        }
        4 => {
            let len = rng.index(64);
            out = rng.bytes(len);
        }
        _ => {
            let len = rng.index(32);
            out.extend(rng.bytes(len));
        }
    }
    out
}

/// Decodes `iterations` mutations of `sample` as `M`: each is a message or an error.
fn survive_mutations<M: Message + Default + PartialEq + std::fmt::Debug>(
    rng: &mut Rng,
    iterations: usize,
    sample: &M,
) -> usize {
    let valid = sample.encode_to_vec();
    assert_eq!(&M::decode(valid.as_slice()).unwrap(), sample);
    let mut refused = 0;
    for _ in 0..iterations {
        let input = mutate(rng, &valid);
        if M::decode(input.as_slice()).is_err() {
            refused += 1;
        }
    }
    refused
}

fn sample_token() -> pb::ChunkToken {
    pb::ChunkToken {
        chunk_id: 7,
        version: 3,
        access: token::READ | token::WRITE,
        expires_unix_ms: 1 << 41,
        key_epoch: 9,
        mac: vec![0xab; 32],
    }
}

fn sample_chunk() -> pb::ChunkInfo {
    pb::ChunkInfo {
        index: 1,
        chunk_id: 7,
        version: 3,
        length: 4096,
        replicas: vec![pb::ReplicaLocation {
            server_id: 2,
            addr: "127.0.0.1:9501".into(),
        }],
        issued_version: 4,
        token: Some(sample_token()),
    }
}

#[test]
fn every_wire_message_decodes_or_is_refused_whatever_its_bytes() {
    let (mut rng, n) = setup("wire messages");
    let header = pb::WriteHeader {
        chunk_id: 7,
        version: 3,
        offset: 65536,
        downstream: vec!["127.0.0.1:9502".into(), "127.0.0.1:9503".into()],
        sync: true,
        truncate: false,
        token: Some(sample_token()),
    };
    let mut refused = 0;
    refused += survive_mutations(&mut rng, n, &header);
    refused += survive_mutations(
        &mut rng,
        n,
        &pb::WriteChunkRequest {
            msg: Some(pb::write_chunk_request::Msg::Ranges(pb::WriteRanges {
                ranges: vec![pb::WriteRange {
                    offset: 3,
                    data: b"bytes".to_vec().into(),
                }],
            })),
        },
    );
    refused += survive_mutations(
        &mut rng,
        n,
        &pb::ReadChunkRequest {
            chunk_id: 7,
            version: 3,
            offset: 0,
            length: 1 << 20,
            token: Some(sample_token()),
        },
    );
    refused += survive_mutations(&mut rng, n, &sample_chunk());
    refused += survive_mutations(
        &mut rng,
        n,
        &pb::GetChunksReply {
            chunks: vec![sample_chunk(), sample_chunk()],
            file_size: 1 << 30,
        },
    );
    refused += survive_mutations(
        &mut rng,
        n,
        &pb::HeartbeatRequest {
            server_id: 3,
            capacity_bytes: 1 << 40,
            chunks: vec![pb::ChunkReplicaReport {
                chunk_id: 7,
                version: 3,
                length: 10,
            }],
            full_report: true,
            corrupt_chunks: vec![1, 2, 3],
            ..Default::default()
        },
    );
    refused += survive_mutations(
        &mut rng,
        n,
        &pb::MakeNodeRequest {
            parent: 1,
            name: b"name".to_vec(),
            kind: pb::FileKind::Regular as i32,
            perm: 0o644,
            uid: 1000,
            gid: 1000,
            exclusive: true,
            ..Default::default()
        },
    );
    refused += survive_mutations(
        &mut rng,
        n,
        &pb::RenameRequest {
            parent: 1,
            name: b"a".to_vec(),
            new_parent: 2,
            new_name: b"b".to_vec(),
            flags: 1,
        },
    );
    refused += survive_mutations(
        &mut rng,
        n,
        &pb::CommitWriteRequest {
            ino: 5,
            chunks: vec![pb::ChunkCommit {
                index: 0,
                chunk_id: 7,
                version: 3,
                length: 10,
                placed_servers: vec![1, 2, 3],
            }],
            size: 10,
            ..Default::default()
        },
    );
    refused += survive_mutations(
        &mut rng,
        n,
        &pb::RaftMessage {
            payload: vec![1, 2, 3, 4],
        },
    );
    // Most mutations still decode (protobuf skips what it does not know); some must not.
    assert!(
        refused > 0,
        "no mutation was refused: the mutator does not mutate"
    );
}

#[test]
fn a_message_claiming_more_than_it_holds_is_refused_at_once() {
    // A ReadChunkReply whose data field claims 2^62 bytes and holds four.
    let claim = [
        0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 1, 2, 3, 4,
    ];
    assert!(pb::ReadChunkReply::decode(&claim[..]).is_err());
    // A packed repeated field claiming 2^62 bytes of numbers and holding two.
    let packed = [
        0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 1, 2,
    ];
    assert!(pb::HeartbeatReply::decode(&packed[..]).is_err());
    // Repeated fields grow with the elements that are there: 1000 two-byte ones are 1000.
    let many = [0x08, 0x01].repeat(1000);
    let reply = pb::HeartbeatReply::decode(many.as_slice()).unwrap();
    assert_eq!(reply.delete_chunks, vec![1; 1000]);
}

#[test]
fn only_an_untouched_token_opens_its_chunk() {
    let (mut rng, n) = setup("chunk tokens");
    let signer = TokenSigner::new(&token::new_secret(), token::DEFAULT_LIFETIME);
    let verifier = TokenVerifier::default();
    let now = token::unix_ms_now();
    verifier.update(&signer.keys(now));
    let good = signer.issue(7, 3, token::READ | token::WRITE, now);
    assert!(
        verifier
            .check(Some(&good), 7, Some(3), token::WRITE, now)
            .is_ok()
    );
    let encoded = good.encode_to_vec();
    for _ in 0..n {
        let bytes = mutate(&mut rng, &encoded);
        let Ok(token) = pb::ChunkToken::decode(bytes.as_slice()) else {
            continue;
        };
        let opens = verifier
            .check(Some(&token), 7, Some(3), token::READ, now)
            .is_ok();
        // A mutation that decodes to the same fields is the same token; anything else fails.
        let same = (
            token.chunk_id,
            token.version,
            token.expires_unix_ms,
            token.key_epoch,
        ) == (
            good.chunk_id,
            good.version,
            good.expires_unix_ms,
            good.key_epoch,
        ) && token.access == good.access
            && token.mac == good.mac;
        assert_eq!(opens, same, "{token:?}");
    }
    // Random tokens out of nothing never open anything.
    for _ in 0..n {
        let mac_len = rng.index(40);
        let token = pb::ChunkToken {
            chunk_id: 7,
            version: rng.next_u64(),
            access: rng.next_u64() as u32,
            expires_unix_ms: rng.next_u64(),
            key_epoch: good.key_epoch,
            mac: rng.bytes(mac_len),
        };
        assert!(
            verifier
                .check(Some(&token), 7, None, token::READ, now)
                .is_err()
        );
    }
}

#[test]
fn certificate_fields_of_any_bytes_are_read_or_refused() {
    let (mut rng, n) = setup("certificates");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::URI(Role::Client.urn().try_into().unwrap()));
    params.subject_alt_names.push(rcgen::SanType::URI(
        dfs_proto::tls::READ_ONLY_URN.try_into().unwrap(),
    ));
    let der = params.self_signed(&key).unwrap().der().to_vec();
    assert_eq!(role_of(&der), Ok(Role::Client));
    assert!(is_read_only(&der));
    for _ in 0..n {
        let bytes = mutate(&mut rng, &der);
        // Either answer is fine for a mangled certificate (TLS verified its signature before
        // these run); what matters is an answer.
        let _ = role_of(&bytes);
        let _ = is_read_only(&bytes);
    }
}
