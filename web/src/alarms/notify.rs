//! Notifications of state changes: the body each webhook format gets, the signature that
//! lets a receiver check it came from us, and one delivery attempt.

use std::time::Duration;

use serde_json::json;

use super::event::AlarmEvent;
use super::rule::{AlarmRule, Webhook, WebhookFormat};
use crate::dashboard::{Scope, Window, url_encode};

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the webhook's secret>`.
pub const SIGNATURE_HEADER: &str = "x-roentgen-signature";
/// `<alarm>/<seq>`: the same on every attempt of one notification.
pub const DELIVERY_HEADER: &str = "x-roentgen-delivery";
/// Longest one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The dashboard page showing the traces behind an event: the analytics of the entity's
/// traces over the periods that decided it.
pub fn link(base: &str, rule: &AlarmRule, event: &AlarmEvent) -> String {
    let scope = Scope {
        window: Some("custom".to_owned()),
        start: None,
        end: None,
        filter: rule.entity_selector_expression.clone(),
        group: rule.group_name.clone(),
    };
    let window = Window {
        preset: "custom".to_owned(),
        start: event.window_start,
        end: event.window_end,
    };
    let mut url = format!(
        "{}/analytics?{}",
        base.trim_end_matches('/'),
        scope.window_query(&window)
    );
    if let Some(filter) = scope.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        url.push_str("&filter=");
        url.push_str(&url_encode(filter));
    }
    url
}

/// The body `format` gets.
pub fn body(format: WebhookFormat, rule: &AlarmRule, event: &AlarmEvent, link: &str) -> Vec<u8> {
    let value = match format {
        WebhookFormat::Json => json!({
            "Type": "AlarmStateChange",
            "Id": event.delivery_id(),
            "Alarm": rule.name,
            "Description": rule.description,
            "OldState": event.old_state,
            "NewState": event.new_state,
            "Reason": event.decision.reason,
            "Time": event.time,
            "Metric": rule.metric,
            "Entity": rule.entity_selector_expression,
            "GroupName": rule.group_name,
            "Period": rule.period,
            "WindowStart": event.window_start,
            "WindowEnd": event.window_end,
            "Datapoints": event.decision.datapoints,
            "Threshold": event.decision.threshold,
            "Band": event.decision.band,
            "Link": link,
        }),
        WebhookFormat::Slack => {
            let mark = match event.new_state {
                super::AlarmState::Alarm => ":red_circle:",
                super::AlarmState::Ok => ":large_green_circle:",
                super::AlarmState::InsufficientData => ":white_circle:",
            };
            json!({
                "text": format!(
                    "{mark} *{}* is {} (was {}): {} <{}|View traces>",
                    slack_escape(&rule.name),
                    event.new_state.as_str(),
                    event.old_state.as_str(),
                    slack_escape(&event.decision.reason),
                    link
                )
            })
        }
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Slack's three control characters in message text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let mac = crate::auth::sigv4::hmac(secret.as_bytes(), &signed);
    format!("t={timestamp},v1={}", crate::auth::sigv4::hex(&mac))
}

/// Sends one notification; `Ok` with the status on a 2xx answer, else what went wrong.
pub async fn send(
    client: &reqwest::Client,
    hook: &Webhook,
    delivery_id: &str,
    body: Vec<u8>,
) -> Result<u16, String> {
    let mut request = client
        .post(&hook.url)
        .timeout(ATTEMPT_TIMEOUT)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("roentgen-alarms/", env!("CARGO_PKG_VERSION")),
        )
        .header(DELIVERY_HEADER, delivery_id);
    if let Some(secret) = &hook.secret {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        request = request.header(SIGNATURE_HEADER, signature(secret, now, &body));
    }
    match request.body(body).send().await {
        Ok(answer) if answer.status().is_success() => Ok(answer.status().as_u16()),
        Ok(answer) => Err(format!("answered {}", answer.status())),
        Err(e) => Err(roentgen_daemon::forwarder::client::error_chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarms::evaluate::{AlarmState, Decision};

    fn event() -> (AlarmRule, AlarmEvent) {
        let rule: AlarmRule = serde_json::from_value(json!({
            "Name": "pay-faults", "Metric": "FaultRate", "Comparison": "GreaterThanThreshold",
            "Threshold": 0.1, "EntitySelectorExpression": "service(\"pay\")"
        }))
        .unwrap();
        let event = AlarmEvent {
            alarm: rule.name.clone(),
            seq: 3,
            time: 1_800_000_075.0,
            old_state: AlarmState::Ok,
            new_state: AlarmState::Alarm,
            decision: Decision {
                state: AlarmState::Alarm,
                reason: "1 of 1 <periods> & more".to_owned(),
                datapoints: Vec::new(),
                threshold: Some(0.1),
                band: None,
            },
            window_start: 1_800_000_000.0,
            window_end: 1_800_000_060.0,
            pending: vec![0],
            deliveries: Vec::new(),
        };
        (rule, event)
    }

    #[test]
    fn bodies_carry_the_change_and_a_link_to_its_traces() {
        let (rule, event) = event();
        let link = link("http://host:4000/", &rule, &event);
        assert!(
            link.starts_with("http://host:4000/analytics?window=custom&start="),
            "{link}"
        );
        assert!(link.contains("&filter=service%28%22pay%22%29"), "{link}");
        let json: serde_json::Value =
            serde_json::from_slice(&body(WebhookFormat::Json, &rule, &event, &link)).unwrap();
        assert_eq!(json["Id"], "pay-faults/3");
        assert_eq!(json["NewState"], "ALARM");
        assert_eq!(json["OldState"], "OK");
        assert_eq!(json["Threshold"], 0.1);
        assert_eq!(json["Link"], link);
        let slack: serde_json::Value =
            serde_json::from_slice(&body(WebhookFormat::Slack, &rule, &event, &link)).unwrap();
        let text = slack["text"].as_str().unwrap();
        assert!(text.contains("*pay-faults* is ALARM (was OK)"), "{text}");
        assert!(text.contains("&lt;periods&gt; &amp; more"), "{text}");
    }

    #[test]
    fn the_signature_is_an_hmac_of_time_and_body() {
        // Computed independently (Python's hmac) over "1.what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", 1, b"what do ya want for nothing?"),
            "t=1,v1=a9049465ce89cfb8e9aac62333abda66f80e3403f51f57f6bae3c3a4485eca38"
        );
        let sig = signature("Jefe", 1, b"what do ya want for nothing?");
        assert_ne!(sig, signature("Jefe", 2, b"what do ya want for nothing?"));
        assert_ne!(sig, signature("jefe", 1, b"what do ya want for nothing?"));
    }
}
