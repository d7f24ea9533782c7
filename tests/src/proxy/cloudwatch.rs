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

pub(super) async fn cloudwatch(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
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
        .ask_with_status(call, TARGET, &call.operation, body.clone())
        .await?;
    if call.operation == "SetAlarmState" && status == 200 && str_of(&body, "StateValue") == "ALARM"
    {
        notify(call, st, upstream, str_of(&body, "AlarmName")).await?;
    }
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

/// An alarm entering ALARM publishes to its SNS actions; to an encrypted topic only if the
/// topic's KMS key lets CloudWatch use it: the key policy evaluated for `cloudwatch.amazonaws.com`
/// `kms:GenerateDataKey*` and `kms:Decrypt` with `aws:SourceAccount` and `aws:SourceArn` (the alarm)
/// (SNS Developer Guide, "Enable compatibility between event sources from AWS services and
/// encrypted topics";
/// <https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services>).
/// AWS fails the action quietly (the alarm's history says so); this layer records each outcome
/// ([`AwsProxy::alarm_notifications`]). The AWS managed `aws/sns` key admits SNS only.
async fn notify(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
    alarm: &str,
) -> Result<(), std::io::Error> {
    use super::policy::{Decision, Request, evaluate};
    let (account, _) = caller_account(call, st, upstream).await?;
    let (_, described) = upstream
        .ask_with_status(
            call,
            TARGET,
            "DescribeAlarms",
            json!({"AlarmNames": [alarm]}),
        )
        .await?;
    let found = &described["MetricAlarms"][0];
    let alarm_arn = str_of(found, "AlarmArn").to_string();
    let topics: Vec<String> = found["AlarmActions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|a| a.contains(":sns:"))
        .map(str::to_string)
        .collect();
    for topic in topics {
        let key = upstream
            .topic_attribute(call, &topic, "KmsMasterKeyId")
            .await?;
        let outcome = match key.filter(|k| !k.is_empty()) {
            None => "published".to_string(),
            Some(key) => {
                let (_, described) = upstream
                    .ask_with_status(call, "TrentService", "DescribeKey", json!({"KeyId": key}))
                    .await?;
                let key_arn = str_of(&described["KeyMetadata"], "Arn").to_string();
                let aws_managed = str_of(&described["KeyMetadata"], "KeyManager") == "AWS"
                    || key.ends_with("alias/aws/sns");
                let (_, policy) = upstream
                    .ask_with_status(
                        call,
                        "TrentService",
                        "GetKeyPolicy",
                        json!({"KeyId": key_arn, "PolicyName": "default"}),
                    )
                    .await?;
                let policy: Value =
                    serde_json::from_str(str_of(&policy, "Policy")).unwrap_or_default();
                let refused = aws_managed
                    || ["kms:GenerateDataKey", "kms:Decrypt"].iter().any(|action| {
                        let ask = Request::by_service("cloudwatch.amazonaws.com", action, &key_arn)
                            .with("aws:SourceAccount", &account)
                            .with("aws:SourceArn", &alarm_arn);
                        evaluate(&policy, &ask) != Decision::Allow
                    });
                if refused {
                    format!("refused: the key {key} does not let cloudwatch.amazonaws.com use it")
                } else {
                    "published".to_string()
                }
            }
        };
        st.lock()
            .unwrap()
            .alarm_notifications
            .push(format!("{alarm} to {topic}: {outcome}"));
    }
    Ok(())
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
