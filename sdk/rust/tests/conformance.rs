//! The shared conformance vectors (`conformance/` at the repository root) against the Rust
//! protocol engine and error model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};
use snow::params::CipherChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use thalovant::protocol::wire1::{Wire1Payload, payload_type_name};
use thalovant::protocol::{build_prologue, canonical_json, decode_frame, derive_psk, encode_binary, select_noise};

fn vectors(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn object(value: &Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

#[test]
fn psk_derivation_matches_argon2id_vectors() {
    let doc = vectors("noise-vectors.json");
    let cases = doc["psk"]["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let psk = derive_psk(case["password"].as_str().unwrap(), case["node_id"].as_str().unwrap()).unwrap();
        assert_eq!(hex::encode(psk), case["psk"].as_str().unwrap(), "{case}");
    }
}

#[test]
fn transport_ciphertexts_match_both_suites_nonce_layouts() {
    let doc = vectors("noise-vectors.json");
    let transport = &doc["transport"];
    let key: [u8; 32] = hex::decode(transport["key"].as_str().unwrap()).unwrap().try_into().unwrap();
    let plaintext = transport["plaintext_utf8"].as_str().unwrap().as_bytes();
    let cases = transport["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let choice = match case["suite"].as_str().unwrap() {
            "25519_ChaChaPoly_SHA256" => CipherChoice::ChaChaPoly,
            "25519_AESGCM_SHA256" => CipherChoice::AESGCM,
            other => panic!("unknown suite {other}"),
        };
        let mut cipher = DefaultResolver.resolve_cipher(&choice).unwrap();
        cipher.set(&key);
        let counter = case["counter"].as_u64().unwrap();
        let mut out = vec![0u8; plaintext.len() + 16];
        let size = cipher.encrypt(counter, b"", plaintext, &mut out);
        assert_eq!(hex::encode(&out[..size]), case["ciphertext"].as_str().unwrap(), "{case}");
        let mut back = vec![0u8; size];
        let n = cipher.decrypt(counter, b"", &out[..size], &mut back).unwrap();
        assert_eq!(&back[..n], plaintext);
        // a different counter must not authenticate (the nonce layout matters)
        assert!(cipher.decrypt(counter + 1, b"", &out[..size], &mut back).is_err());
    }
}

#[test]
fn canonical_json_matches_vectors() {
    let doc = vectors("noise-vectors.json");
    let cases = doc["canonical_json"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let out = canonical_json(&case["input"]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), case["output"].as_str().unwrap());
    }
}

#[test]
fn prologue_matches_vector_bytes() {
    let doc = vectors("noise-vectors.json");
    let p = &doc["prologue"];
    let bytes =
        build_prologue(&object(&p["hello"]), &object(&p["handshake"]), p["protocol_name"].as_str().unwrap()).unwrap();
    assert_eq!(hex::encode(bytes), p["bytes"].as_str().unwrap());
    assert_eq!(
        thalovant::protocol::protocol_name(p["pattern"].as_str().unwrap(), p["suite"].as_str().unwrap()).unwrap(),
        p["protocol_name"].as_str().unwrap()
    );
}

#[test]
fn pattern_and_suite_selection_matches_vectors() {
    let doc = vectors("noise-vectors.json");
    let cases = doc["selection"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let mut noise = Map::new();
        noise.insert("patterns".into(), case["patterns"].clone());
        noise.insert("suites".into(), case["suites"].clone());
        let got = select_noise(&noise, case["pinned"].as_bool().unwrap(), false).ok();
        let expected = case["expect"].as_array().map(|e| (e[0].as_str().unwrap(), e[1].as_str().unwrap()));
        assert_eq!(got, expected, "{case}");
    }
}

#[test]
fn binary_frames_decode_byte_exact() {
    let doc = vectors("binary-frames.json");
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 11);
    for case in cases {
        let frame = B64.decode(case["frame"].as_str().unwrap()).unwrap();
        let decoded = decode_frame(&frame).unwrap();
        assert_eq!(decoded.msg_type, "bin");
        assert_eq!(decoded.kind().as_deref(), case["expected_kind"].as_str(), "{}", case["name"]);
        assert_eq!(Value::Object(decoded.metadata.clone()), case["expected_metadata"], "{}", case["name"]);
        let payload = B64.decode(case["expected_payload"].as_str().unwrap()).unwrap();
        assert_eq!(decoded.payload, Wire1Payload::Binary(payload.clone()), "{}", case["name"]);
        // the encoder writes the same bytes (uncompressed cases; compression is zlib-version dependent)
        if !decoded.compressed {
            let again = encode_binary(&payload, decoded.bin_type.unwrap(), &decoded.metadata).unwrap();
            assert_eq!(again, frame, "{}", case["name"]);
        }
    }
    let bus = B64.decode(doc["bus_frame"].as_str().unwrap()).unwrap();
    assert_eq!(&bus[..5], &[0xc0, 0x42, 0x02, 0x7b, 0x7d]);
    let decoded = decode_frame(&bus).unwrap();
    assert_eq!(decoded.msg_type, "bus");
    let envelope = decoded.to_envelope().unwrap();
    let message = envelope.bus_message();
    assert_eq!(message.kind, "speak");
    assert_eq!(message.data["utterance"], "Pfffft.");
}

#[test]
fn binary_payload_kinds_and_metadata_match_vectors() {
    let doc = vectors("binary-vectors.json");
    for (number, name) in doc["payload_kinds"].as_object().unwrap() {
        assert_eq!(payload_type_name(number.parse().unwrap()), name.as_str().unwrap());
    }
    for (number, name) in doc["unnamed_kind_names"].as_object().unwrap() {
        let number: u8 = number.parse().unwrap();
        assert_eq!(payload_type_name(number), name.as_str().unwrap());
    }
    for case in doc["cases"].as_array().unwrap() {
        let frame =
            encode_binary(b"\x01\x02", case["bin_type"].as_u64().unwrap() as u8, &object(&case["metadata"])).unwrap();
        let decoded = decode_frame(&frame).unwrap();
        let expected = &case["expected"];
        assert_eq!(decoded.kind().as_deref(), expected["kind"].as_str());
        assert_eq!(decoded.utterance(), expected["utterance"].as_str());
        assert_eq!(decoded.lang(), expected["lang"].as_str());
        assert_eq!(decoded.file_name(), expected["file_name"].as_str());
    }
}

#[test]
fn api_errors_expose_status_code_detail_and_problem_and_never_echo_inputs() {
    let doc = vectors("api-error-vectors.json");
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 15);
    for case in cases {
        let response = &case["response"];
        let status = response["status"].as_u64().unwrap() as u16;
        let headers = vec![("content-type".to_string(), response["content_type"].as_str().unwrap().to_string())];
        let error =
            thalovant::errors::api_error_from_response(status, response["body"].as_str().unwrap().as_bytes(), &headers);
        let expect = &case["expect"];
        let name = case["name"].as_str().unwrap();
        assert_eq!(error.status, Some(status), "{name}");
        assert_eq!(error.code.as_deref(), expect["code"].as_str(), "{name}");
        assert_eq!(error.detail.as_deref(), expect["detail"].as_str(), "{name}");
        let problem = error.problem.clone().map_or(Value::Null, Value::Object);
        assert_eq!(problem, expect["problem"], "{name}");
        let shown = thalovant::Error::from(error.clone());
        for secret in case["message_excludes"].as_array().into_iter().flatten() {
            let secret = secret.as_str().unwrap();
            assert!(
                !error.message.contains(secret) && !shown.to_string().contains(secret),
                "{name}: {}",
                error.message
            );
        }
        assert!(error.message.starts_with(&format!("Thalovant API request failed with HTTP {status}")), "{name}");
    }
}
