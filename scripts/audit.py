"""An independent auditor's verdict on the landing zone in the emulator (`make audit`).

Runs Prowler's CIS AWS Foundations Benchmark v5.0 checks for the controls the landing zone owns in
every ACTIVE account (members through their access role, as an auditor with a cross-account role
would), then prints per check how many accounts pass. Where Prowler reaches nothing through the
emulator (it says so in its log), the control is checked here with the AWS SDK for Python, and the
output says so.

usage: audit.py ENDPOINT PROWLER OUTDIR REGION...
"""

import json
import os
import subprocess
import sys
import time

import boto3

ENDPOINT, PROWLER, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
REGIONS = sys.argv[4:] or ["us-east-1", "eu-west-1"]
ROLE = "OrganizationAccountAccessRole"

# CIS v5.0 requirement, Prowler check, the landing-zone control that owns it.
CHECKS = [
    ("1.2", "account_security_contact_information_is_registered", "SecurityBaseline securityContact"),
    ("1.7", "iam_password_policy_minimum_length_14", "AwsAccount passwordPolicy"),
    ("1.8", "iam_password_policy_reuse_24", "AwsAccount passwordPolicy"),
    ("1.16", "iam_support_role_created", "SecurityBaseline supportRole"),
    ("2.1.4", "s3_account_level_public_access_blocks", "SecurityBaseline s3BlockPublicAccess"),
    ("3.3", "config_recorder_all_regions_enabled", "SecurityBaseline config"),
    ("5.1.1", "ec2_ebs_default_encryption", "SecurityBaseline ebsDefaultEncryption"),
    ("5.7", "ec2_instance_account_imdsv2_enabled", "SecurityBaseline instanceMetadataV2Default"),
    ("1.19", "accessanalyzer_enabled", "SecurityBaseline accessAnalyzer"),
    ("4.16", "securityhub_enabled", "Organization securityServices.securityHub"),
    # Not a CIS v5.0 requirement; the practice the landing zone follows all the same.
    ("-", "guardduty_is_enabled", "Organization securityServices.guardDuty"),
]
# CIS v5.0 section 4: the organization trail's metric filters and alarms live where the trail
# does, in the management account (AuditTrail spec.alarms); judged there only.
MANAGEMENT_ONLY = [
    ("4.1", "cloudwatch_log_metric_filter_unauthorized_api_calls"),
    ("4.2", "cloudwatch_log_metric_filter_sign_in_without_mfa"),
    ("4.3", "cloudwatch_log_metric_filter_root_usage"),
    ("4.4", "cloudwatch_log_metric_filter_policy_changes"),
    ("4.5", "cloudwatch_log_metric_filter_and_alarm_for_cloudtrail_configuration_changes_enabled"),
    ("4.6", "cloudwatch_log_metric_filter_authentication_failures"),
    ("4.7", "cloudwatch_log_metric_filter_disable_or_scheduled_deletion_of_kms_cmk"),
    ("4.8", "cloudwatch_log_metric_filter_for_s3_bucket_policy_changes"),
    ("4.9", "cloudwatch_log_metric_filter_and_alarm_for_aws_config_configuration_changes_enabled"),
    ("4.10", "cloudwatch_log_metric_filter_security_group_changes"),
    ("4.11", "cloudwatch_changes_to_network_acls_alarm_configured"),
    ("4.12", "cloudwatch_changes_to_network_gateways_alarm_configured"),
    ("4.13", "cloudwatch_changes_to_network_route_tables_alarm_configured"),
    ("4.14", "cloudwatch_changes_to_vpcs_alarm_configured"),
    ("4.15", "cloudwatch_log_metric_filter_aws_organizations_changes"),
]
# No Prowler check in CIS v5.0 for this one: checked with the SDK only.
SDK_ONLY = [("-", "no default VPC (unused ones deleted)", "SecurityBaseline defaultVpcs")]


def session(account, management):
    base = boto3.session.Session(region_name="us-east-1")
    if account == management:
        return base
    c = base.client("sts", endpoint_url=ENDPOINT).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName="auditor"
    )["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=c["AccessKeyId"],
        aws_secret_access_key=c["SecretAccessKey"],
        aws_session_token=c["SessionToken"],
        region_name="us-east-1",
    )


def s3control(sess, account):
    """S3 Control addresses the account by host name (<id>.<endpoint>), which no resolver knows for a
    loopback endpoint: the request goes to the endpoint itself, with that Host header."""
    client = sess.client("s3control", endpoint_url=ENDPOINT)
    host = ENDPOINT.split("//", 1)[1]

    def route(request, **_):
        request.headers["Host"] = f"{account}.{host}"
        request.url = request.url.replace(f"{account}.{host}", host)

    client.meta.events.register("before-send.s3-control.*", route)
    return client


def sdk_check(check, sess, account):
    """The same question Prowler asks, with the SDK: PASS or FAIL and why."""
    if check == "account_security_contact_information_is_registered":
        try:
            c = sess.client("account", endpoint_url=ENDPOINT).get_alternate_contact(AlternateContactType="SECURITY")[
                "AlternateContact"
            ]
        except Exception as e:  # ResourceNotFoundException
            return "FAIL", type(e).__name__
        return "PASS", f"{c['Name']} <{c['EmailAddress']}>"
    if check == "s3_account_level_public_access_blocks":
        try:
            c = s3control(sess, account).get_public_access_block(AccountId=account)[
                "PublicAccessBlockConfiguration"
            ]
        except Exception as e:  # NoSuchPublicAccessBlockConfiguration
            return "FAIL", type(e).__name__
        on = all(c.get(k) for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"))
        return ("PASS" if on else "FAIL"), "all four flags" if on else str(c)
    if check == "no default VPC (unused ones deleted)":
        left = [
            f"{r}:{v['VpcId']}"
            for r in REGIONS
            for v in sess.client("ec2", endpoint_url=ENDPOINT, region_name=r).describe_vpcs(
                Filters=[{"Name": "is-default", "Values": ["true"]}]
            )["Vpcs"]
        ]
        return ("FAIL", " ".join(left)) if left else ("PASS", "none in " + ", ".join(REGIONS))
    if check == "ec2_instance_account_imdsv2_enabled":
        bad = [
            r
            for r in REGIONS
            if sess.client("ec2", endpoint_url=ENDPOINT, region_name=r)
            .get_instance_metadata_defaults()["AccountLevel"]
            .get("HttpTokens")
            != "required"
        ]
        return ("FAIL", "not required in " + ", ".join(bad)) if bad else ("PASS", "required")
    if check == "ec2_ebs_default_encryption":
        bad = [
            r
            for r in REGIONS
            if not sess.client("ec2", endpoint_url=ENDPOINT, region_name=r).get_ebs_encryption_by_default()[
                "EbsEncryptionByDefault"
            ]
        ]
        return ("FAIL", "off in " + ", ".join(bad)) if bad else ("PASS", "on")
    return None


def prowler(account, management, outdir):
    """Runs Prowler for one account; its findings by check (statuses), and its log."""
    checks = [c for _, c, _ in CHECKS]
    if account == management:
        checks += [c for _, c in MANAGEMENT_ONLY]
    cmd = [
        PROWLER, "aws", "--checks", *checks, "-f", *REGIONS, "--scan-unused-services",
        "--output-formats", "json-ocsf", "-o", outdir, "-F", account, "--no-banner",
        "--log-level", "ERROR",
    ]
    if account != management:
        cmd += ["-R", f"arn:aws:iam::{account}:role/{ROLE}"]
    env = dict(os.environ, AWS_ENDPOINT_URL=ENDPOINT)
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    findings = {}
    path = os.path.join(outdir, f"{account}.ocsf.json")
    if os.path.exists(path):
        for f in json.load(open(path)):
            code = f.get("metadata", {}).get("event_code")
            findings.setdefault(code, []).append((f.get("status_code"), f.get("status_detail", "")))
    return findings, run.stdout + run.stderr


def main():
    orgs = boto3.client("organizations", endpoint_url=ENDPOINT, region_name="us-east-1")
    management = orgs.describe_organization()["Organization"]["MasterAccountId"]
    accounts = [
        (a["Id"], a["Name"])
        for page in orgs.get_paginator("list_accounts").paginate()
        for a in page["Accounts"]
        if a["Status"] == "ACTIVE"
    ]
    os.makedirs(OUT, exist_ok=True)
    results = {}  # (check, account) -> (status, how)
    logs = {}
    started = time.time()
    findings_of = {}
    for account, name in accounts:
        findings, log = prowler(account, management, OUT)
        if account == management:
            findings_of = findings
        logs[account] = log
        sess = session(account, management)
        for _, check, _ in CHECKS + SDK_ONLY:
            # A check Prowler leaves to a person (MANUAL) is asked with the SDK, as one would.
            statuses = [x for x in findings.get(check, []) if x[0] != "MANUAL"]
            if statuses:
                ok = all(s == "PASS" for s, _ in statuses)
                why = next((d for s, d in statuses if s != "PASS"), "")
                results[(check, account)] = ("PASS" if ok else "FAIL", "prowler", why)
                continue
            sdk = sdk_check(check, sess, account)
            if sdk:
                results[(check, account)] = (sdk[0], "sdk", sdk[1])
            else:
                results[(check, account)] = ("NONE", "prowler", "no finding")
        print(f"  audited {name} ({account})", file=sys.stderr)
    members = [a for a, _ in accounts if a != management]
    print(f"\nCIS AWS Foundations Benchmark v5.0, through each account's {ROLE} (Prowler, {len(accounts)} ACTIVE accounts, regions {', '.join(REGIONS)}, {time.time() - started:.0f} s)\n")
    print(f"{'CIS':6} {'check':52} {'owned by':42} {'members':>8}  management")
    sdk_notes = {}
    failing = []
    for cis, check, owner in CHECKS + SDK_ONLY:
        passed = sum(results[(check, a)][0] == "PASS" for a in members)
        mgmt = results[(check, management)]
        by_sdk = [a for a, _ in accounts if results[(check, a)][1] == "sdk"]
        mark = " *" if by_sdk else ""
        print(f"{cis:6} {check + mark:52} {owner:42} {passed:>3}/{len(members):<4}  {mgmt[0]}")
        if by_sdk:
            sdk_notes[check] = len(by_sdk)
        failing += [(check, a, results[(check, a)][2]) for a in members if results[(check, a)][0] != "PASS"]
    if sdk_notes:
        print("\n* Prowler gave no verdict for these; checked with the AWS SDK for Python instead:")
        for check, n in sdk_notes.items():
            hint = ""
            if check == "s3_account_level_public_access_blocks":
                hint = " (S3 Control's <account>.<endpoint> host does not resolve for a loopback endpoint)"
            elif check == "account_security_contact_information_is_registered":
                hint = " (a MANUAL check in Prowler: it asks a person to look in the console)"
            elif check.startswith("no default VPC"):
                hint = " (no CIS v5.0 check in Prowler)"
            print(f"  {check}: {n} account(s){hint}")
            said = next((l.strip() for log in logs.values() for l in log.splitlines() if check in l or ("s3control" in check and "s3control" in l.lower())), None)
            if check == "s3_account_level_public_access_blocks":
                said = next((l.strip() for log in logs.values() for l in log.splitlines() if "s3control" in l.lower() or "S3Control" in l), said)
            if said:
                print(f"    Prowler: {said[:200]}")
    print(f"\nCIS v5.0 section 4, in the management account (the organization trail's log group, AuditTrail alarms):\n")
    for cis, check in MANAGEMENT_ONLY:
        statuses = [x for x in findings_of.get(check, []) if x[0] != "MANUAL"]
        ok = bool(statuses) and all(st == "PASS" for st, _ in statuses)
        why = next((d for st, d in statuses if st != "PASS"), "" if statuses else "no finding")
        print(f"{cis:6} {check:90} {'PASS' if ok else 'FAIL'}")
        if not ok:
            failing.append((check, management, why))
    print("\nThe management account is not under the baseline's targets (the root covers member accounts); name it under targets.ids to baseline it.")
    if failing:
        print("\nFailing:")
        for check, a, why in failing:
            print(f"  {check} in {a}: {why}")
        sys.exit(1)
    print("\nEvery member account passes every check above, and the management account every section 4 check.")


main()
