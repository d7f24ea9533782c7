//! Amazon EC2 and AWS Config as AWS answers them where the emulator cannot: the account's instance
//! metadata defaults (Get/ModifyInstanceMetadataDefaults, missing from the emulator), the default
//! EBS key (Get/ModifyEbsDefaultKmsKeyId, likewise), and a delivery
//! channel whose bucket does not admit AWS Config.

use super::*;

const EC2_NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
const REQUEST_ID: &str = "00000000-0000-4000-8000-000000000000";

/// The account a request is made in: the member account of an assumed-role session, else the
/// management account.
fn account_of(s: &State, call: &Call) -> String {
    s.session_accounts
        .get(&call.caller)
        .cloned()
        .unwrap_or_else(|| "management".into())
}

/// An EC2 query-protocol error: `<Response><Errors><Error>` XML (EC2 API reference, "Error codes").
fn ec2_error(status: u16, code: &str, message: &str) -> Answer {
    respond(
        status,
        "text/xml",
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{REQUEST_ID}</RequestID></Response>"
        ),
    )
}

pub(super) async fn ec2(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    match call.operation.as_str() {
        "GetInstanceMetadataDefaults" => {
            let s = st.lock().unwrap();
            let key = (account_of(&s, call), call.region.clone());
            // Nothing set: AWS answers an empty accountLevel.
            let tokens = match s.imds_defaults.get(&key).map(String::as_str) {
                Some("required") => "<httpTokens>required</httpTokens>",
                Some("optional") => "<httpTokens>optional</httpTokens>",
                _ => "",
            };
            Ok(respond(
                200,
                "text/xml",
                format!(
                    "<GetInstanceMetadataDefaultsResponse xmlns=\"{EC2_NS}\"><requestId>{REQUEST_ID}</requestId><accountLevel>{tokens}</accountLevel></GetInstanceMetadataDefaultsResponse>"
                ),
            ))
        }
        "ModifyInstanceMetadataDefaults" => {
            let tokens = call.form.get("HttpTokens").cloned().unwrap_or_default();
            if !["required", "optional", "no-preference", ""].contains(&tokens.as_str()) {
                return Ok(ec2_error(
                    400,
                    "InvalidParameterValue",
                    &format!("Value ({tokens}) for parameter HttpTokens is invalid."),
                ));
            }
            let mut s = st.lock().unwrap();
            let key = (account_of(&s, call), call.region.clone());
            match tokens.as_str() {
                "no-preference" => {
                    s.imds_defaults.remove(&key);
                }
                "" => {}
                t => {
                    s.imds_defaults.insert(key, t.to_string());
                }
            }
            Ok(respond(
                200,
                "text/xml",
                format!(
                    "<ModifyInstanceMetadataDefaultsResponse xmlns=\"{EC2_NS}\"><requestId>{REQUEST_ID}</requestId><return>true</return></ModifyInstanceMetadataDefaultsResponse>"
                ),
            ))
        }
        // The emulator keeps EBS encryption by default but not its key.
        "GetEbsDefaultKmsKeyId" => {
            let s = st.lock().unwrap();
            let key = s
                .ebs_keys
                .get(&(account_of(&s, call), call.region.clone()))
                .cloned()
                .unwrap_or_else(|| "alias/aws/ebs".into());
            Ok(respond(
                200,
                "text/xml",
                format!(
                    "<GetEbsDefaultKmsKeyIdResponse xmlns=\"{EC2_NS}\"><requestId>{REQUEST_ID}</requestId><kmsKeyId>{key}</kmsKeyId></GetEbsDefaultKmsKeyIdResponse>"
                ),
            ))
        }
        "ModifyEbsDefaultKmsKeyId" => {
            let key = call.form.get("KmsKeyId").cloned().unwrap_or_default();
            let mut s = st.lock().unwrap();
            let at = (account_of(&s, call), call.region.clone());
            s.ebs_keys.insert(at, key.clone());
            Ok(respond(
                200,
                "text/xml",
                format!(
                    "<ModifyEbsDefaultKmsKeyIdResponse xmlns=\"{EC2_NS}\"><requestId>{REQUEST_ID}</requestId><kmsKeyId>{key}</kmsKeyId></ModifyEbsDefaultKmsKeyIdResponse>"
                ),
            ))
        }
        _ => upstream.forward(call).await,
    }
}

pub(super) async fn config(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    if call.operation == "PutDeliveryChannel" {
        let bucket = call.json["DeliveryChannel"]["s3BucketName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if st
            .lock()
            .unwrap()
            .realism
            .config_refused_buckets
            .contains(&bucket)
        {
            return Ok(json_error(
                400,
                "InsufficientDeliveryPolicyException",
                &format!(
                    "Insufficient delivery policy to s3 bucket: {bucket}, unable to write to bucket, provided s3 key prefix is 'null'."
                ),
                None,
            ));
        }
    }
    upstream.forward(call).await
}
