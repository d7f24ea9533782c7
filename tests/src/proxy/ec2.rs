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

/// AWS Config checks, on PutDeliveryChannel, that it may write to the bucket: the bucket's policy
/// evaluated for `config.amazonaws.com` asking `s3:GetBucketAcl` and `s3:ListBucket` on the bucket
/// and `s3:PutObject` of its check file under `[prefix/]AWSLogs/<account>/Config/` with
/// `s3:x-amz-acl` = `bucket-owner-full-control`, as AWS's page lists the statements it needs
/// (AWS Config Developer Guide, "Permissions for the Amazon S3 Bucket for the AWS Config Delivery
/// Channel"; <https://docs.aws.amazon.com/config/latest/developerguide/s3-bucket-policy.html>).
/// The request carries `aws:SourceAccount` (the recording account) and `aws:SourceOrgID` (its
/// Organization: IAM sends it for a service acting for an Organization member, IAM User Guide,
/// "AWS global condition context keys"), over TLS. A bucket without a policy is refused: the
/// delivery bucket is another account's (the log archive).
async fn config_refusal(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
    bucket: &str,
) -> Result<Option<String>, std::io::Error> {
    use super::policy::{Decision, Request, evaluate};
    let (account, _) = caller_account(call, st, upstream).await?;
    let org = upstream
        .ask_organizations_as_management(call, "DescribeOrganization", json!({}))
        .await?;
    let org_id = str_of(&org["Organization"], "Id").to_string();
    let Some(policy) = upstream.bucket_policy(call, bucket).await? else {
        return Ok(Some("the bucket has no policy".into()));
    };
    let prefix = call.json["DeliveryChannel"]["s3KeyPrefix"]
        .as_str()
        .map(|p| format!("{p}/"))
        .unwrap_or_default();
    let arn = format!("arn:aws:s3:::{bucket}");
    let object = format!("{arn}/{prefix}AWSLogs/{account}/Config/ConfigWritabilityCheckFile");
    let asks = [
        Request::by_service("config.amazonaws.com", "s3:GetBucketAcl", &arn),
        Request::by_service("config.amazonaws.com", "s3:ListBucket", &arn),
        Request::by_service("config.amazonaws.com", "s3:PutObject", &object)
            .with("s3:x-amz-acl", "bucket-owner-full-control"),
    ];
    for ask in asks {
        let ask = ask
            .with("aws:SourceAccount", &account)
            .with("aws:SourceOrgID", &org_id)
            .with("aws:SecureTransport", "true");
        if evaluate(&policy, &ask) != Decision::Allow {
            return Ok(Some(format!("{} on {}", ask.action, ask.resource)));
        }
    }
    Ok(None)
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
        if config_refusal(call, st, upstream, &bucket).await?.is_some() {
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
