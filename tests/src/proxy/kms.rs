//! AWS KMS as AWS answers it where the emulator cannot: every account has, in every region, the
//! AWS managed key for SNS (`alias/aws/sns`), which KMS describes with `KeyManager: AWS`; the
//! emulator has no such key, and calls every key it has a customer's. (AWS KMS Developer Guide,
//! "AWS managed keys": <https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#aws-managed-key>.)
//! Its key policy admits only SNS in the account (`kms:ViaService`), as AWS's does.

use super::*;

/// The id this layer gives the `aws/sns` key (any fixed id: AWS's differs per account).
pub const AWS_SNS_KEY_ID: &str = "5f1a7e2c-0d3b-4c8e-9a61-aa5e5a5e5a5e";

pub(super) async fn kms(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let key = str_of(&call.json, "KeyId");
    let names_aws_sns = key == "alias/aws/sns"
        || key == AWS_SNS_KEY_ID
        || key.ends_with(":alias/aws/sns")
        || key.ends_with(&format!(":key/{AWS_SNS_KEY_ID}"));
    if !names_aws_sns || !matches!(call.operation.as_str(), "DescribeKey" | "GetKeyPolicy") {
        return upstream.forward(call).await;
    }
    let (account, _) = caller_account(call, st, upstream).await?;
    let region = &call.region;
    let arn = format!("arn:aws:kms:{region}:{account}:key/{AWS_SNS_KEY_ID}");
    Ok(match call.operation.as_str() {
        "DescribeKey" => json_ok(json!({"KeyMetadata": {
            "AWSAccountId": account,
            "KeyId": AWS_SNS_KEY_ID,
            "Arn": arn,
            "Enabled": true,
            "KeyState": "Enabled",
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "Origin": "AWS_KMS",
            "KeyManager": "AWS",
            "Description": "Default master key that protects my SNS topics when no other key is defined",
            "CreationDate": 1.6e9,
            "MultiRegion": false,
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        }})),
        _ => json_ok(json!({"PolicyName": "default", "Policy": json!({
            "Version": "2012-10-17",
            "Id": "auto-sns",
            "Statement": [{
                "Sid": "Allow access through SNS for all principals in the account that are authorized to use SNS",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": account, "kms:ViaService": format!("sns.{region}.amazonaws.com")}},
            }],
        }).to_string()})),
    })
}
