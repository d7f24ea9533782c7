//! GuardDuty, Security Hub and IAM Access Analyzer inside one account (the management account, to
//! name a delegated administrator; the administrator account, to configure the service for the
//! Organization). A port over domain types, implemented on the SDK; regional clients are built
//! once per region.

use super::call::Service;
use super::{AwsResult, CallRecorder};
use async_trait::async_trait;
use aws_sdk_accessanalyzer as aa;
use aws_sdk_guardduty as gd;
use aws_sdk_securityhub as sh;
use std::collections::BTreeMap;

/// Member account → its relationship with the administrator (`Enabled`, `Created`, …).
pub type Members = BTreeMap<String, String>;

#[async_trait]
pub trait SecurityServices: Send + Sync {
    /// GuardDuty's delegated administrators (as the management account sees them).
    async fn guardduty_admins(&self, region: &str) -> AwsResult<Vec<String>>;
    async fn enable_guardduty_admin(&self, region: &str, account: &str) -> AwsResult<()>;
    async fn detector(&self, region: &str) -> AwsResult<Option<String>>;
    async fn create_detector(&self, region: &str) -> AwsResult<String>;
    /// `ALL`, `NEW` or `NONE`.
    async fn guardduty_auto_enable(&self, region: &str, detector: &str) -> AwsResult<String>;
    async fn set_guardduty_auto_enable(
        &self,
        region: &str,
        detector: &str,
        value: &str,
    ) -> AwsResult<()>;
    async fn guardduty_members(&self, region: &str, detector: &str) -> AwsResult<Members>;
    /// Adds accounts of the Organization as members: (account id, email).
    async fn create_guardduty_members(
        &self,
        region: &str,
        detector: &str,
        accounts: &[(String, String)],
    ) -> AwsResult<()>;

    async fn securityhub_admins(&self, region: &str) -> AwsResult<Vec<String>>;
    async fn enable_securityhub_admin(&self, region: &str, account: &str) -> AwsResult<()>;
    async fn hub_enabled(&self, region: &str) -> AwsResult<bool>;
    async fn enable_hub(&self, region: &str) -> AwsResult<()>;
    /// (auto-enable new accounts, `DEFAULT` or `NONE` standards for them).
    async fn hub_auto_enable(&self, region: &str) -> AwsResult<(bool, String)>;
    async fn set_hub_auto_enable(&self, region: &str, on: bool, standards: &str) -> AwsResult<()>;
    async fn enabled_standards(&self, region: &str) -> AwsResult<Vec<String>>;
    async fn enable_standards(&self, region: &str, arns: &[String]) -> AwsResult<()>;
    async fn hub_members(&self, region: &str) -> AwsResult<Members>;
    async fn create_hub_members(&self, region: &str, accounts: &[String]) -> AwsResult<()>;

    /// Analyzers of a type (`ORGANIZATION`, `ACCOUNT`): (name, status).
    async fn analyzers(&self, region: &str, kind: &str) -> AwsResult<Vec<(String, String)>>;
    async fn create_analyzer(&self, region: &str, name: &str, kind: &str) -> AwsResult<()>;
}

const GUARDDUTY: Service = Service("guardduty");
const SECURITYHUB: Service = Service("securityhub");
const ACCESS_ANALYZER: Service = Service("access-analyzer");

type Regional = (gd::Client, sh::Client, aa::Client);

pub struct SdkSecurityServices {
    regional: super::PerRegion<Regional>,
}

impl SdkSecurityServices {
    pub fn new(base: &aws_config::SdkConfig, recorder: &CallRecorder) -> Self {
        Self {
            regional: super::PerRegion::new(base, recorder, |c, r| {
                (
                    super::recorded!(gd, c, r),
                    super::recorded!(sh, c, r),
                    super::recorded!(aa, c, r),
                )
            }),
        }
    }

    fn regional(&self, region: &str) -> Regional {
        self.regional.get(region)
    }
}

#[async_trait]
impl SecurityServices for SdkSecurityServices {
    async fn guardduty_admins(&self, region: &str) -> AwsResult<Vec<String>> {
        let (gd, ..) = self.regional(region);
        let pages = gd
            .list_organization_admin_accounts()
            .into_paginator()
            .send();
        GUARDDUTY
            .pages("ListOrganizationAdminAccounts", pages, |page, out| {
                out.extend(
                    page.admin_accounts()
                        .iter()
                        .filter(|a| a.admin_status().is_some_and(|s| s.as_str() == "ENABLED"))
                        .filter_map(|a| a.admin_account_id().map(str::to_string)),
                )
            })
            .await
    }

    async fn enable_guardduty_admin(&self, region: &str, account: &str) -> AwsResult<()> {
        let (gd, ..) = self.regional(region);
        GUARDDUTY
            .send(
                "EnableOrganizationAdminAccount",
                gd.enable_organization_admin_account()
                    .admin_account_id(account)
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn detector(&self, region: &str) -> AwsResult<Option<String>> {
        let (gd, ..) = self.regional(region);
        let pages = gd.list_detectors().into_paginator().send();
        let ids = GUARDDUTY
            .pages("ListDetectors", pages, |page, out| {
                out.extend(page.detector_ids().iter().cloned())
            })
            .await?;
        Ok(ids.into_iter().next())
    }

    async fn create_detector(&self, region: &str) -> AwsResult<String> {
        let (gd, ..) = self.regional(region);
        let out = GUARDDUTY
            .send("CreateDetector", gd.create_detector().enable(true).send())
            .await?;
        Ok(out.detector_id().unwrap_or_default().to_string())
    }

    async fn guardduty_auto_enable(&self, region: &str, detector: &str) -> AwsResult<String> {
        let (gd, ..) = self.regional(region);
        let out = GUARDDUTY
            .send(
                "DescribeOrganizationConfiguration",
                gd.describe_organization_configuration()
                    .detector_id(detector)
                    .send(),
            )
            .await?;
        Ok(out
            .auto_enable_organization_members()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| "NONE".into()))
    }

    async fn set_guardduty_auto_enable(
        &self,
        region: &str,
        detector: &str,
        value: &str,
    ) -> AwsResult<()> {
        let (gd, ..) = self.regional(region);
        GUARDDUTY
            .send(
                "UpdateOrganizationConfiguration",
                gd.update_organization_configuration()
                    .detector_id(detector)
                    .auto_enable_organization_members(value.into())
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn guardduty_members(&self, region: &str, detector: &str) -> AwsResult<Members> {
        let (gd, ..) = self.regional(region);
        let pages = gd
            .list_members()
            .detector_id(detector)
            .only_associated("true")
            .into_paginator()
            .send();
        let members = GUARDDUTY
            .pages("ListMembers", pages, |page, out| {
                out.extend(page.members().iter().filter_map(|m| {
                    Some((
                        m.account_id()?.to_string(),
                        m.relationship_status().unwrap_or_default().to_string(),
                    ))
                }))
            })
            .await?;
        Ok(members.into_iter().collect())
    }

    async fn create_guardduty_members(
        &self,
        region: &str,
        detector: &str,
        accounts: &[(String, String)],
    ) -> AwsResult<()> {
        let (gd, ..) = self.regional(region);
        // AWS takes at most 50 accounts per request.
        for chunk in accounts.chunks(50) {
            let details = chunk
                .iter()
                .map(|(id, email)| {
                    gd::types::AccountDetail::builder()
                        .account_id(id)
                        .email(email)
                        .build()
                })
                .collect();
            GUARDDUTY
                .send(
                    "CreateMembers",
                    gd.create_members()
                        .detector_id(detector)
                        .set_account_details(Some(details))
                        .send(),
                )
                .await?;
        }
        Ok(())
    }

    async fn securityhub_admins(&self, region: &str) -> AwsResult<Vec<String>> {
        let (_, sh, _) = self.regional(region);
        let pages = sh
            .list_organization_admin_accounts()
            .into_paginator()
            .send();
        SECURITYHUB
            .pages("ListOrganizationAdminAccounts", pages, |page, out| {
                out.extend(
                    page.admin_accounts()
                        .iter()
                        .filter(|a| a.status().is_some_and(|s| s.as_str() == "ENABLED"))
                        .filter_map(|a| a.account_id().map(str::to_string)),
                )
            })
            .await
    }

    async fn enable_securityhub_admin(&self, region: &str, account: &str) -> AwsResult<()> {
        let (_, sh, _) = self.regional(region);
        SECURITYHUB
            .send(
                "EnableOrganizationAdminAccount",
                sh.enable_organization_admin_account()
                    .admin_account_id(account)
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn hub_enabled(&self, region: &str) -> AwsResult<bool> {
        let (_, sh, _) = self.regional(region);
        match SECURITYHUB
            .send("DescribeHub", sh.describe_hub().send())
            .await
        {
            Ok(_) => Ok(true),
            // "Account … is not subscribed to AWS Security Hub".
            Err(e) if e.code == "InvalidAccessException" => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn enable_hub(&self, region: &str) -> AwsResult<()> {
        let (_, sh, _) = self.regional(region);
        match SECURITYHUB
            .send(
                "EnableSecurityHub",
                sh.enable_security_hub()
                    .enable_default_standards(false)
                    .send(),
            )
            .await
        {
            Err(e) if e.code == "ResourceConflictException" => Ok(()),
            r => r.map(|_| ()),
        }
    }

    async fn hub_auto_enable(&self, region: &str) -> AwsResult<(bool, String)> {
        let (_, sh, _) = self.regional(region);
        let out = SECURITYHUB
            .send(
                "DescribeOrganizationConfiguration",
                sh.describe_organization_configuration().send(),
            )
            .await?;
        Ok((
            out.auto_enable().unwrap_or(false),
            out.auto_enable_standards()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "NONE".into()),
        ))
    }

    async fn set_hub_auto_enable(&self, region: &str, on: bool, standards: &str) -> AwsResult<()> {
        let (_, sh, _) = self.regional(region);
        SECURITYHUB
            .send(
                "UpdateOrganizationConfiguration",
                sh.update_organization_configuration()
                    .auto_enable(on)
                    .auto_enable_standards(standards.into())
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn enabled_standards(&self, region: &str) -> AwsResult<Vec<String>> {
        let (_, sh, _) = self.regional(region);
        let pages = sh.get_enabled_standards().into_paginator().send();
        SECURITYHUB
            .pages("GetEnabledStandards", pages, |page, out| {
                out.extend(
                    page.standards_subscriptions()
                        .iter()
                        .filter_map(|s| s.standards_arn().map(str::to_string)),
                )
            })
            .await
    }

    async fn enable_standards(&self, region: &str, arns: &[String]) -> AwsResult<()> {
        let (_, sh, _) = self.regional(region);
        let requests = arns
            .iter()
            .map(|a| {
                sh::types::StandardsSubscriptionRequest::builder()
                    .standards_arn(a)
                    .build()
            })
            .collect();
        SECURITYHUB
            .send(
                "BatchEnableStandards",
                sh.batch_enable_standards()
                    .set_standards_subscription_requests(Some(requests))
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn hub_members(&self, region: &str) -> AwsResult<Members> {
        let (_, sh, _) = self.regional(region);
        let pages = sh
            .list_members()
            .only_associated(true)
            .into_paginator()
            .send();
        let members = SECURITYHUB
            .pages("ListMembers", pages, |page, out| {
                out.extend(page.members().iter().filter_map(|m| {
                    Some((
                        m.account_id()?.to_string(),
                        m.member_status().unwrap_or_default().to_string(),
                    ))
                }))
            })
            .await?;
        Ok(members.into_iter().collect())
    }

    async fn create_hub_members(&self, region: &str, accounts: &[String]) -> AwsResult<()> {
        let (_, sh, _) = self.regional(region);
        // AWS takes at most 50 accounts per request.
        for chunk in accounts.chunks(50) {
            let details = chunk
                .iter()
                .map(|a| sh::types::AccountDetails::builder().account_id(a).build())
                .collect();
            SECURITYHUB
                .send(
                    "CreateMembers",
                    sh.create_members()
                        .set_account_details(Some(details))
                        .send(),
                )
                .await?;
        }
        Ok(())
    }

    async fn analyzers(&self, region: &str, kind: &str) -> AwsResult<Vec<(String, String)>> {
        let (.., aa) = self.regional(region);
        let pages = aa
            .list_analyzers()
            .r#type(kind.into())
            .into_paginator()
            .send();
        ACCESS_ANALYZER
            .pages("ListAnalyzers", pages, |page, out| {
                out.extend(
                    page.analyzers()
                        .iter()
                        .map(|a| (a.name().to_string(), a.status().as_str().to_string())),
                )
            })
            .await
    }

    async fn create_analyzer(&self, region: &str, name: &str, kind: &str) -> AwsResult<()> {
        let (.., aa) = self.regional(region);
        match ACCESS_ANALYZER
            .send(
                "CreateAnalyzer",
                aa.create_analyzer()
                    .analyzer_name(name)
                    .r#type(kind.into())
                    .send(),
            )
            .await
        {
            // Made meanwhile (another pass, another tool): what was wanted is there.
            Err(e) if e.code == "ConflictException" => Ok(()),
            r => r.map(|_| ()),
        }
    }
}
