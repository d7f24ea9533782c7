//! Amazon CloudWatch as the SDK speaks to it: Smithy RPC v2 CBOR
//! (`POST /service/GraniteServiceVersion20100801/operation/<Op>`, `application/cbor`). The
//! emulator answers CloudWatch's JSON protocol only, so this layer carries each call across:
//! the CBOR request as JSON to the emulator, its JSON answer (or error) back as CBOR, with
//! timestamps tagged as epoch seconds and doubles as doubles, as the protocol requires.

use super::*;
use minicbor::data::{Tag, Type};

const TARGET: &str = "GraniteServiceVersion20100801";

/// Fields CloudWatch declares as doubles (an integral value must still be sent as one).
const DOUBLES: &[&str] = &[
    "Threshold",
    "Value",
    "Sum",
    "Minimum",
    "Maximum",
    "SampleCount",
    "Average",
];

pub(super) async fn cloudwatch(call: &Call, upstream: &Upstream) -> Result<Answer, std::io::Error> {
    if !call.parts.uri.path().contains("/operation/") {
        return upstream.forward(call).await;
    }
    let body = if call.body.is_empty() {
        json!({})
    } else {
        let mut d = minicbor::Decoder::new(&call.body);
        decode(&mut d).map_err(|e| std::io::Error::other(e.to_string()))?
    };
    let (status, answer) = upstream
        .ask_with_status(call, TARGET, &call.operation, body)
        .await?;
    let mut out = Vec::new();
    let mut e = minicbor::Encoder::new(&mut out);
    encode(&mut e, "", &answer).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut response = respond(status, "application/cbor", out);
    response.headers_mut().insert(
        "smithy-protocol",
        hyper::header::HeaderValue::from_static("rpc-v2-cbor"),
    );
    Ok(response)
}

fn decode(d: &mut minicbor::Decoder) -> Result<Value, minicbor::decode::Error> {
    Ok(match d.datatype()? {
        Type::Bool => json!(d.bool()?),
        Type::Null | Type::Undefined => {
            d.skip()?;
            Value::Null
        }
        Type::U8
        | Type::U16
        | Type::U32
        | Type::U64
        | Type::I8
        | Type::I16
        | Type::I32
        | Type::I64
        | Type::Int => {
            json!(d.i64()?)
        }
        Type::F16 | Type::F32 | Type::F64 => json!(d.f64()?),
        Type::String | Type::StringIndef => json!(d.str_iter()?.collect::<Result<String, _>>()?),
        Type::Tag => {
            d.tag()?;
            decode(d)?
        }
        Type::Array | Type::ArrayIndef => {
            let len = d.array()?;
            let mut items = Vec::new();
            loop {
                if len.is_some_and(|n| items.len() as u64 == n) {
                    break;
                }
                if len.is_none() && d.datatype()? == Type::Break {
                    d.skip()?;
                    break;
                }
                items.push(decode(d)?);
            }
            Value::Array(items)
        }
        Type::Map | Type::MapIndef => {
            let len = d.map()?;
            let mut map = serde_json::Map::new();
            loop {
                if len.is_some_and(|n| map.len() as u64 == n) {
                    break;
                }
                if len.is_none() && d.datatype()? == Type::Break {
                    d.skip()?;
                    break;
                }
                let k = d.str_iter()?.collect::<Result<String, _>>()?;
                map.insert(k, decode(d)?);
            }
            Value::Object(map)
        }
        _ => {
            d.skip()?;
            Value::Null
        }
    })
}

fn encode(
    e: &mut minicbor::Encoder<&mut Vec<u8>>,
    key: &str,
    v: &Value,
) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
    match v {
        Value::Null => {
            e.null()?;
        }
        Value::Bool(b) => {
            e.bool(*b)?;
        }
        Value::Number(n) => {
            if key.ends_with("Timestamp") || key == "Timestamp" {
                e.tag(Tag::new(1))?.f64(n.as_f64().unwrap_or_default())?;
            } else if DOUBLES.contains(&key) || !(n.is_i64() || n.is_u64()) {
                e.f64(n.as_f64().unwrap_or_default())?;
            } else {
                e.i64(n.as_i64().unwrap_or_default())?;
            }
        }
        Value::String(s) => {
            e.str(s)?;
        }
        Value::Array(items) => {
            e.array(items.len() as u64)?;
            for item in items {
                encode(e, key, item)?;
            }
        }
        Value::Object(map) => {
            e.map(map.len() as u64)?;
            for (k, item) in map {
                e.str(k)?;
                encode(e, k, item)?;
            }
        }
    }
    Ok(())
}
