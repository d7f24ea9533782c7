//! Amazon S3 as AWS answers it: HeadBucket for buckets elsewhere, bucket policies settling.

use super::*;

pub(super) async fn s3(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    if call.operation == "HeadBucket" {
        let bucket = call.parts.uri.path().trim_matches('/').to_string();
        if let Some(code) = st.lock().unwrap().realism.head_bucket.get(&bucket).copied() {
            // AWS answers HEAD with a status and no body at all.
            let mut resp = respond(code, "application/xml", Bytes::new());
            if code == 301 {
                resp.headers_mut()
                    .insert("x-amz-bucket-region", "eu-west-1".parse().unwrap());
            }
            return Ok(resp);
        }
    }
    let (status, answer, _) = upstream.send(call, call.body.clone()).await?;
    if status < 300 && call.operation == "PutBucketPolicy" {
        st.lock().unwrap().policy_put_at = Some(Instant::now());
    }
    Ok(answer)
}
