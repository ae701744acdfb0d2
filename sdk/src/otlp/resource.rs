//! What a span's resource says about where it ran: the service's name and version, the
//! segment's `origin`, and the `aws` block (account, EC2, ECS, EKS, the SDK that traced it).

use serde_json::{Map, Value, json};

use super::attributes::Attributes;

/// Resource attributes that become parts of a segment (the others go to its metadata).
pub(super) const CONSUMED: &[&str] = &[
    "service.name",
    "service.version",
    "cloud.platform",
    "cloud.provider",
    "cloud.account.id",
    "cloud.availability_zone",
    "cloud.region",
    "host.id",
    "host.type",
    "container.name",
    "container.id",
    "k8s.cluster.name",
    "k8s.pod.name",
    "telemetry.sdk.name",
    "telemetry.sdk.language",
    "telemetry.sdk.version",
];

/// The resource's view, read once per `ResourceSpans`.
#[derive(Debug, Clone, Default)]
pub(super) struct Resource {
    pub service_name: Option<String>,
    pub origin: Option<String>,
    pub service: Option<Map<String, Value>>,
    pub aws: Option<Map<String, Value>>,
    pub region: Option<String>,
    pub metadata: Map<String, Value>,
}

impl Resource {
    pub fn read(attributes: Attributes<'_>) -> Self {
        let text = |k: &str| attributes.text(&[k]);
        let origin = text("cloud.platform").and_then(|p| {
            Some(
                match p.as_str() {
                    "aws_ec2" => "AWS::EC2::Instance",
                    "aws_ecs" => "AWS::ECS::Container",
                    "aws_eks" => "AWS::EKS::Container",
                    "aws_elastic_beanstalk" => "AWS::ElasticBeanstalk::Environment",
                    "aws_lambda" => "AWS::Lambda::Function",
                    _ => return None,
                }
                .to_owned(),
            )
        });
        let mut aws = Map::new();
        if let Some(account) = text("cloud.account.id") {
            aws.insert("account_id".into(), Value::String(account));
        }
        if let Some(instance) = text("host.id") {
            let mut ec2 = json!({ "instance_id": instance });
            if let Some(az) = text("cloud.availability_zone") {
                ec2["availability_zone"] = Value::String(az);
            }
            if let Some(kind) = text("host.type") {
                ec2["instance_size"] = Value::String(kind);
            }
            aws.insert("ec2".into(), ec2);
        }
        if let Some(container) = text("container.name") {
            let mut ecs = json!({ "container": container });
            if let Some(id) = text("container.id") {
                ecs["container_id"] = Value::String(id);
            }
            aws.insert("ecs".into(), ecs);
        }
        if let Some(cluster) = text("k8s.cluster.name") {
            let mut eks = json!({ "cluster_name": cluster });
            if let Some(pod) = text("k8s.pod.name") {
                eks["pod"] = Value::String(pod);
            }
            aws.insert("eks".into(), eks);
        }
        if let Some(sdk) = text("telemetry.sdk.name") {
            let language = text("telemetry.sdk.language").unwrap_or_default();
            let mut xray =
                json!({ "sdk": format!("{sdk} for {language}").trim_end_matches(" for ") });
            if let Some(version) = text("telemetry.sdk.version") {
                xray["sdk_version"] = Value::String(version);
            }
            aws.insert("xray".into(), xray);
        }
        let metadata = attributes
            .0
            .iter()
            .filter(|kv| !CONSUMED.contains(&kv.key.as_str()))
            .map(|kv| {
                (
                    kv.key.clone(),
                    super::attributes::to_json(kv.value.as_ref()),
                )
            })
            .collect();
        Self {
            service_name: text("service.name"),
            origin,
            service: text("service.version").map(|v| {
                let mut m = Map::new();
                m.insert("version".into(), Value::String(v));
                m
            }),
            aws: (!aws.is_empty()).then_some(aws),
            region: text("cloud.region"),
            metadata,
        }
    }
}
