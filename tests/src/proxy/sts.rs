//! AWS STS as AWS answers it: member-account sessions, root sessions.

use super::*;

pub(super) async fn sts(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    if call.operation == "AssumeRoot" {
        let mut s = st.lock().unwrap();
        if !(s.realism.root_access && s.root_features.contains("RootSessions")) {
            return Ok(xml_error(
                "sts",
                403,
                "AccessDenied",
                "User is not authorized to perform: sts:AssumeRoot: root sessions are not enabled for the organization",
            ));
        }
        s.sequence += 1;
        let key = format!("ASIAROOT{:012}", s.sequence);
        let account = call
            .form
            .get("TargetPrincipal")
            .cloned()
            .unwrap_or_default();
        let task = call
            .form
            .get("TaskPolicyArn.arn")
            .cloned()
            .unwrap_or_default();
        s.root_sessions.insert(key.clone(), (account, task));
        return Ok(respond(
            200,
            "text/xml",
            format!(
                "<AssumeRootResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRootResult><Credentials><AccessKeyId>{key}</AccessKeyId><SecretAccessKey>root-secret</SecretAccessKey><SessionToken>root-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><SourceIdentity></SourceIdentity></AssumeRootResult><ResponseMetadata><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ResponseMetadata></AssumeRootResponse>"
            ),
        ));
    }
    if call.operation == "AssumeRole" {
        let arn = call.form.get("RoleArn").cloned().unwrap_or_default();
        // arn:aws:iam::<account>:role/<name>
        let account = arn.split(':').nth(4).unwrap_or_default().to_string();
        let role = arn.rsplit('/').next().unwrap_or_default().to_string();
        let denied = {
            let s = st.lock().unwrap();
            let now = Instant::now();
            s.not_yet_assumable(&account, now)
                || s.hidden_accounts(now).contains(&account)
                || s.realism.no_access_role.contains(&account)
                || (!s.realism.assumable_role_names.is_empty()
                    && !s.realism.assumable_role_names.contains(&role))
        };
        if !denied {
            let (status, answer, bytes) = upstream.send(call, call.body.clone()).await?;
            if status == 200 {
                let xml = String::from_utf8_lossy(&bytes);
                if let Some(key) = xml
                    .split("<AccessKeyId>")
                    .nth(1)
                    .and_then(|r| r.split("</AccessKeyId>").next())
                {
                    let mut s = st.lock().unwrap();
                    s.sessions.insert(key.to_string(), Instant::now());
                    s.session_accounts.insert(key.to_string(), account.clone());
                }
            }
            return Ok(answer);
        }
        if denied {
            return Ok(xml_error(
                "sts",
                403,
                "AccessDenied",
                &format!(
                    "User: arn:aws:iam::123456789012:user/landing-zone is not authorized to perform: sts:AssumeRole on resource: {arn}"
                ),
            ));
        }
    }
    upstream.forward(call).await
}
