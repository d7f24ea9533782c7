//! Amazon SNS as AWS answers it: an email subscription is pending until its mailbox confirms
//! (SNS Developer Guide, "Email notifications": Subscribe returns `pending confirmation`, and
//! ListSubscriptionsByTopic shows `PendingConfirmation` in place of the ARN).

use super::*;

pub(super) async fn sns(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let op = call.operation.as_str();
    let (status, answer, bytes) = upstream.send(call, call.body.clone()).await?;
    if status != 200 {
        return Ok(answer);
    }
    let mut xml = String::from_utf8_lossy(&bytes).into_owned();
    match op {
        "Subscribe"
            if call
                .form
                .get("Protocol")
                .is_some_and(|p| p == "email" || p == "email-json") =>
        {
            let arn = between(&xml, "<SubscriptionArn>", "</SubscriptionArn>").to_string();
            let endpoint = call.form.get("Endpoint").cloned().unwrap_or_default();
            let mut s = st.lock().unwrap();
            // Subscribing a confirmed mailbox again returns its ARN; a pending one stays pending.
            let confirmed_before = s.confirmed_subscriptions.contains(&arn);
            if !confirmed_before {
                s.pending_subscriptions.insert(arn.clone(), endpoint);
                xml = xml.replace(&arn, "pending confirmation");
            }
        }
        "ListSubscriptionsByTopic" | "ListSubscriptions" => {
            let s = st.lock().unwrap();
            for arn in s.pending_subscriptions.keys() {
                xml = xml.replace(&format!(">{arn}<"), ">PendingConfirmation<");
            }
        }
        _ => return Ok(answer),
    }
    Ok(respond(200, "text/xml", xml))
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    text.split(open)
        .nth(1)
        .and_then(|t| t.split(close).next())
        .unwrap_or_default()
}
