//! The account-level security controls of a `SecurityBaseline`, inside one account: S3 Block
//! Public Access (S3 Control), EBS encryption and instance metadata defaults and the default VPC
//! (EC2, per region), the support role (IAM) and AWS Config (per region). A port over domain types,
//! implemented on the SDK; regional clients are built once per region and account.

use super::call::Service;
use super::{AwsResult, CallRecorder};
use async_trait::async_trait;
use aws_sdk_config as cfg;
use aws_sdk_ec2 as ec2;
use aws_sdk_iam as iam;
use aws_sdk_s3control as s3c;

/// What the default VPC of a region holds: what must go before the VPC can.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefaultVpc {
    pub id: String,
    /// Network interfaces in it: anything running (an instance, a load balancer, a Lambda in the
    /// VPC) has one. A VPC with any is in use and never touched.
    pub network_interfaces: usize,
    pub subnets: Vec<String>,
    pub internet_gateways: Vec<String>,
}

/// The support role as IAM has it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoleInfo {
    pub trust: serde_json::Value,
    pub attached: Vec<String>,
}

/// AWS Config in one region.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigState {
    pub recorder: Option<Recorder>,
    pub recording: bool,
    /// The delivery channel's name and bucket.
    pub channel: Option<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorder {
    pub name: String,
    pub role_arn: String,
    pub all_supported: bool,
    pub include_global: bool,
}

#[async_trait]
pub trait AccountControls: Send + Sync {
    /// The account-level S3 Block Public Access flags (ACLs, policy, ignore ACLs, restrict), or
    /// `None` when none are set.
    async fn s3_public_access_block(&self, account: &str) -> AwsResult<Option<[bool; 4]>>;
    async fn set_s3_public_access_block(&self, account: &str, on: bool) -> AwsResult<()>;
    /// Whether new EBS volumes are encrypted by default, and (when `with_key`) with which key.
    async fn ebs_encryption(
        &self,
        region: &str,
        with_key: bool,
    ) -> AwsResult<(bool, Option<String>)>;
    async fn set_ebs_encryption(
        &self,
        region: &str,
        on: bool,
        kms_key_id: Option<&str>,
    ) -> AwsResult<()>;
    /// Whether new instances require IMDSv2 by default.
    async fn imds_v2_required(&self, region: &str) -> AwsResult<bool>;
    async fn set_imds_v2_required(&self, region: &str, on: bool) -> AwsResult<()>;
    async fn default_vpc(&self, region: &str) -> AwsResult<Option<DefaultVpc>>;
    /// Gateways detached and deleted, subnets deleted, then the VPC.
    async fn delete_default_vpc(&self, region: &str, vpc: &DefaultVpc) -> AwsResult<()>;
    async fn role(&self, name: &str) -> AwsResult<Option<RoleInfo>>;
    async fn create_role(&self, name: &str, trust: &str) -> AwsResult<()>;
    async fn set_role_trust(&self, name: &str, trust: &str) -> AwsResult<()>;
    async fn attach_role_policy(&self, name: &str, arn: &str) -> AwsResult<()>;
    async fn config_state(&self, region: &str) -> AwsResult<ConfigState>;
    /// AWS Config's service-linked role, created if missing; its ARN.
    async fn config_role(&self, account: &str, partition: &str) -> AwsResult<String>;
    async fn put_recorder(&self, region: &str, recorder: &Recorder) -> AwsResult<()>;
    async fn put_delivery_channel(&self, region: &str, name: &str, bucket: &str) -> AwsResult<()>;
    async fn start_recorder(&self, region: &str, name: &str) -> AwsResult<()>;
}

const S3_CONTROL: Service = Service("s3control");
const EC2: Service = Service("ec2");
const IAM: Service = Service("iam");
const CONFIG: Service = Service("config");

/// The service-linked role AWS Config records with (created by CreateServiceLinkedRole).
pub const CONFIG_ROLE_PATH: &str = "aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig";

pub struct SdkControls {
    s3control: s3c::Client,
    iam: iam::Client,
    regional: super::PerRegion<(ec2::Client, cfg::Client)>,
}

impl SdkControls {
    pub fn new(base: &aws_config::SdkConfig, recorder: &CallRecorder, iam: iam::Client) -> Self {
        Self {
            s3control: super::recorded!(s3c, base, recorder),
            iam,
            regional: super::PerRegion::new(base, recorder, |c, r| {
                (super::recorded!(ec2, c, r), super::recorded!(cfg, c, r))
            }),
        }
    }

    fn regional(&self, region: &str) -> (ec2::Client, cfg::Client) {
        self.regional.get(region)
    }

    fn ec2(&self, region: &str) -> ec2::Client {
        self.regional(region).0
    }

    fn config(&self, region: &str) -> cfg::Client {
        self.regional(region).1
    }
}

fn vpc_filter(name: &str, value: &str) -> ec2::types::Filter {
    ec2::types::Filter::builder()
        .name(name)
        .values(value)
        .build()
}

#[async_trait]
impl AccountControls for SdkControls {
    async fn s3_public_access_block(&self, account: &str) -> AwsResult<Option<[bool; 4]>> {
        let out = S3_CONTROL
            .send(
                "GetPublicAccessBlock",
                self.s3control
                    .get_public_access_block()
                    .account_id(account)
                    .send(),
            )
            .await;
        match out {
            Ok(o) => Ok(o.public_access_block_configuration().map(|c| {
                [
                    c.block_public_acls() == Some(true),
                    c.block_public_policy() == Some(true),
                    c.ignore_public_acls() == Some(true),
                    c.restrict_public_buckets() == Some(true),
                ]
            })),
            Err(e) if e.code == "NoSuchPublicAccessBlockConfiguration" => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn set_s3_public_access_block(&self, account: &str, on: bool) -> AwsResult<()> {
        if !on {
            S3_CONTROL
                .send(
                    "DeletePublicAccessBlock",
                    self.s3control
                        .delete_public_access_block()
                        .account_id(account)
                        .send(),
                )
                .await?;
            return Ok(());
        }
        let all = s3c::types::PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .block_public_policy(true)
            .ignore_public_acls(true)
            .restrict_public_buckets(true)
            .build();
        S3_CONTROL
            .send(
                "PutPublicAccessBlock",
                self.s3control
                    .put_public_access_block()
                    .account_id(account)
                    .public_access_block_configuration(all)
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn ebs_encryption(
        &self,
        region: &str,
        with_key: bool,
    ) -> AwsResult<(bool, Option<String>)> {
        let ec2 = self.ec2(region);
        let on = EC2
            .send(
                "GetEbsEncryptionByDefault",
                ec2.get_ebs_encryption_by_default().send(),
            )
            .await?
            .ebs_encryption_by_default()
            == Some(true);
        if !with_key {
            return Ok((on, None));
        }
        let key = EC2
            .send(
                "GetEbsDefaultKmsKeyId",
                ec2.get_ebs_default_kms_key_id().send(),
            )
            .await?
            .kms_key_id()
            .map(str::to_string);
        Ok((on, key))
    }

    async fn set_ebs_encryption(
        &self,
        region: &str,
        on: bool,
        kms_key_id: Option<&str>,
    ) -> AwsResult<()> {
        let ec2 = self.ec2(region);
        if !on {
            EC2.send(
                "DisableEbsEncryptionByDefault",
                ec2.disable_ebs_encryption_by_default().send(),
            )
            .await?;
            return Ok(());
        }
        if let Some(key) = kms_key_id {
            EC2.send(
                "ModifyEbsDefaultKmsKeyId",
                ec2.modify_ebs_default_kms_key_id().kms_key_id(key).send(),
            )
            .await?;
        }
        EC2.send(
            "EnableEbsEncryptionByDefault",
            ec2.enable_ebs_encryption_by_default().send(),
        )
        .await?;
        Ok(())
    }

    async fn imds_v2_required(&self, region: &str) -> AwsResult<bool> {
        let out = EC2
            .send(
                "GetInstanceMetadataDefaults",
                self.ec2(region).get_instance_metadata_defaults().send(),
            )
            .await?;
        Ok(out
            .account_level()
            .and_then(|a| a.http_tokens())
            .is_some_and(|t| *t == ec2::types::HttpTokensState::Required))
    }

    async fn set_imds_v2_required(&self, region: &str, on: bool) -> AwsResult<()> {
        use ec2::types::MetadataDefaultHttpTokensState as Tokens;
        let tokens = if on {
            Tokens::Required
        } else {
            Tokens::NoPreference
        };
        EC2.send(
            "ModifyInstanceMetadataDefaults",
            self.ec2(region)
                .modify_instance_metadata_defaults()
                .http_tokens(tokens)
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn default_vpc(&self, region: &str) -> AwsResult<Option<DefaultVpc>> {
        let ec2 = self.ec2(region);
        let vpcs = EC2
            .send(
                "DescribeVpcs",
                ec2.describe_vpcs()
                    .filters(vpc_filter("is-default", "true"))
                    .send(),
            )
            .await?;
        let Some(id) = vpcs.vpcs().iter().find_map(|v| v.vpc_id()) else {
            return Ok(None);
        };
        let interfaces = EC2
            .pages(
                "DescribeNetworkInterfaces",
                ec2.describe_network_interfaces()
                    .filters(vpc_filter("vpc-id", id))
                    .into_paginator()
                    .send(),
                |page, out| {
                    out.extend(
                        page.network_interfaces()
                            .iter()
                            .filter_map(|n| n.network_interface_id().map(str::to_string)),
                    )
                },
            )
            .await?;
        let subnets = EC2
            .pages(
                "DescribeSubnets",
                ec2.describe_subnets()
                    .filters(vpc_filter("vpc-id", id))
                    .into_paginator()
                    .send(),
                |page, out| {
                    out.extend(
                        page.subnets()
                            .iter()
                            .filter_map(|s| s.subnet_id().map(str::to_string)),
                    )
                },
            )
            .await?;
        let gateways = EC2
            .pages(
                "DescribeInternetGateways",
                ec2.describe_internet_gateways()
                    .filters(vpc_filter("attachment.vpc-id", id))
                    .into_paginator()
                    .send(),
                |page, out| {
                    out.extend(
                        page.internet_gateways()
                            .iter()
                            .filter_map(|g| g.internet_gateway_id().map(str::to_string)),
                    )
                },
            )
            .await?;
        Ok(Some(DefaultVpc {
            id: id.to_string(),
            network_interfaces: interfaces.len(),
            subnets,
            internet_gateways: gateways,
        }))
    }

    async fn delete_default_vpc(&self, region: &str, vpc: &DefaultVpc) -> AwsResult<()> {
        let ec2 = self.ec2(region);
        for g in &vpc.internet_gateways {
            EC2.send(
                "DetachInternetGateway",
                ec2.detach_internet_gateway()
                    .internet_gateway_id(g)
                    .vpc_id(&vpc.id)
                    .send(),
            )
            .await?;
            EC2.send(
                "DeleteInternetGateway",
                ec2.delete_internet_gateway().internet_gateway_id(g).send(),
            )
            .await?;
        }
        for s in &vpc.subnets {
            EC2.send("DeleteSubnet", ec2.delete_subnet().subnet_id(s).send())
                .await?;
        }
        EC2.send("DeleteVpc", ec2.delete_vpc().vpc_id(&vpc.id).send())
            .await?;
        Ok(())
    }

    async fn role(&self, name: &str) -> AwsResult<Option<RoleInfo>> {
        let Some((_, trust)) = super::iam::role_trust(&self.iam, name).await? else {
            return Ok(None);
        };
        let attached = IAM
            .pages(
                "ListAttachedRolePolicies",
                self.iam
                    .list_attached_role_policies()
                    .role_name(name)
                    .into_paginator()
                    .send(),
                |page, out| {
                    out.extend(
                        page.attached_policies()
                            .iter()
                            .filter_map(|p| p.policy_arn().map(str::to_string)),
                    )
                },
            )
            .await?;
        Ok(Some(RoleInfo { trust, attached }))
    }

    async fn create_role(&self, name: &str, trust: &str) -> AwsResult<()> {
        super::iam::create_role(
            &self.iam,
            name,
            trust,
            "AWS Support access (CIS 1.16), kept by landing-zone-operator",
        )
        .await
    }

    async fn set_role_trust(&self, name: &str, trust: &str) -> AwsResult<()> {
        super::iam::set_role_trust(&self.iam, name, trust).await
    }

    async fn attach_role_policy(&self, name: &str, arn: &str) -> AwsResult<()> {
        IAM.send(
            "AttachRolePolicy",
            self.iam
                .attach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn config_state(&self, region: &str) -> AwsResult<ConfigState> {
        let config = self.config(region);
        let recorders = CONFIG
            .send(
                "DescribeConfigurationRecorders",
                config.describe_configuration_recorders().send(),
            )
            .await?;
        let recorder = recorders
            .configuration_recorders()
            .first()
            .map(|r| Recorder {
                name: r.name().unwrap_or_default().to_string(),
                role_arn: r.role_arn().unwrap_or_default().to_string(),
                all_supported: r.recording_group().is_some_and(|g| g.all_supported()),
                include_global: r
                    .recording_group()
                    .is_some_and(|g| g.include_global_resource_types()),
            });
        let recording = match &recorder {
            None => false,
            Some(r) => CONFIG
                .send(
                    "DescribeConfigurationRecorderStatus",
                    config
                        .describe_configuration_recorder_status()
                        .configuration_recorder_names(&r.name)
                        .send(),
                )
                .await?
                .configuration_recorders_status()
                .iter()
                .any(|s| s.recording()),
        };
        let channel = CONFIG
            .send(
                "DescribeDeliveryChannels",
                config.describe_delivery_channels().send(),
            )
            .await?
            .delivery_channels()
            .first()
            .map(|c| {
                (
                    c.name().unwrap_or_default().to_string(),
                    c.s3_bucket_name().unwrap_or_default().to_string(),
                )
            });
        Ok(ConfigState {
            recorder,
            recording,
            channel,
        })
    }

    async fn config_role(&self, account: &str, partition: &str) -> AwsResult<String> {
        let arn = format!("arn:{partition}:iam::{account}:role/{CONFIG_ROLE_PATH}");
        let name = CONFIG_ROLE_PATH.rsplit('/').next().unwrap_or_default();
        if let Some(found) = IAM
            .find("GetRole", self.iam.get_role().role_name(name).send())
            .await?
        {
            return Ok(found.role().map(|r| r.arn().to_string()).unwrap_or(arn));
        }
        let created = IAM
            .send(
                "CreateServiceLinkedRole",
                self.iam
                    .create_service_linked_role()
                    .aws_service_name("config.amazonaws.com")
                    .send(),
            )
            .await;
        match created {
            Ok(out) => Ok(out.role().map(|r| r.arn().to_string()).unwrap_or(arn)),
            // Made a moment ago by another region's recorder or by AWS Config itself: "Service role
            // name AWSServiceRoleForConfig has been taken in this account".
            Err(e) if e.code == "InvalidInput" || e.code == "EntityAlreadyExists" => Ok(arn),
            Err(e) => Err(e),
        }
    }

    async fn put_recorder(&self, region: &str, r: &Recorder) -> AwsResult<()> {
        let group = cfg::types::RecordingGroup::builder()
            .all_supported(r.all_supported)
            .include_global_resource_types(r.include_global)
            .build();
        let recorder = cfg::types::ConfigurationRecorder::builder()
            .name(&r.name)
            .role_arn(&r.role_arn)
            .recording_group(group)
            .build();
        CONFIG
            .send(
                "PutConfigurationRecorder",
                self.config(region)
                    .put_configuration_recorder()
                    .configuration_recorder(recorder)
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn put_delivery_channel(&self, region: &str, name: &str, bucket: &str) -> AwsResult<()> {
        let channel = cfg::types::DeliveryChannel::builder()
            .name(name)
            .s3_bucket_name(bucket)
            .build();
        CONFIG
            .send(
                "PutDeliveryChannel",
                self.config(region)
                    .put_delivery_channel()
                    .delivery_channel(channel)
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn start_recorder(&self, region: &str, name: &str) -> AwsResult<()> {
        CONFIG
            .send(
                "StartConfigurationRecorder",
                self.config(region)
                    .start_configuration_recorder()
                    .configuration_recorder_name(name)
                    .send(),
            )
            .await?;
        Ok(())
    }
}
