//! The stored JSON forms of [`NodeKey`] and [`Sample`], written into every trace summary: a
//! node as its `type|name` text and a sample as a five-element array, about half the bytes of
//! their field-by-field objects. The object forms written by earlier versions still read.

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{NodeKey, Outcome, Sample};

impl Serialize for NodeKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

/// The object form of a node key.
#[derive(Deserialize)]
struct NodeFields {
    name: String,
    #[serde(default)]
    kind: String,
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeKey;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a node key as \"type|name\" or {name, kind}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeKey, E> {
        Ok(NodeKey::decode(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NodeKey, A::Error> {
        let f = NodeFields::deserialize(MapAccessDeserializer::new(map))?;
        Ok(NodeKey {
            name: f.name,
            kind: f.kind,
        })
    }
}

impl<'de> Deserialize<'de> for NodeKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

impl Serialize for Sample {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(5)?;
        t.serialize_element(&self.src)?;
        t.serialize_element(&self.dst)?;
        t.serialize_element(&self.minute)?;
        t.serialize_element(&self.outcome)?;
        t.serialize_element(&self.response_time)?;
        t.end()
    }
}

/// The object form of a sample.
#[derive(Deserialize)]
struct SampleFields {
    src: String,
    #[serde(default)]
    dst: String,
    minute: i64,
    outcome: Outcome,
    response_time: f64,
}

struct SampleVisitor;

impl<'de> Visitor<'de> for SampleVisitor {
    type Value = Sample;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sample as [src, dst, minute, outcome, response_time] or an object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sample, A::Error> {
        let missing = |i: usize| de::Error::invalid_length(i, &"five elements");
        Ok(Sample {
            src: seq.next_element()?.ok_or_else(|| missing(0))?,
            dst: seq.next_element()?.ok_or_else(|| missing(1))?,
            minute: seq.next_element()?.ok_or_else(|| missing(2))?,
            outcome: seq.next_element()?.ok_or_else(|| missing(3))?,
            response_time: seq.next_element()?.ok_or_else(|| missing(4))?,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Sample, A::Error> {
        let f = SampleFields::deserialize(MapAccessDeserializer::new(map))?;
        Ok(Sample {
            src: f.src,
            dst: f.dst,
            minute: f.minute,
            outcome: f.outcome,
            response_time: f.response_time,
        })
    }
}

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SampleVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_forms_round_trip_and_object_forms_still_read() {
        let key = NodeKey {
            name: "orders".into(),
            kind: "AWS::ECS::Container".into(),
        };
        let text = serde_json::to_string(&key).unwrap();
        assert_eq!(text, "\"AWS::ECS::Container|orders\"");
        assert_eq!(serde_json::from_str::<NodeKey>(&text).unwrap(), key);
        let old: NodeKey =
            serde_json::from_str(r#"{"name":"orders","kind":"AWS::ECS::Container"}"#).unwrap();
        assert_eq!(old, key);
        let bare: NodeKey = serde_json::from_str(r#"{"name":"api"}"#).unwrap();
        assert_eq!(bare.kind, "");

        let sample = Sample {
            src: key.encode(),
            dst: String::new(),
            minute: 30_000_000,
            outcome: Outcome::Throttle,
            response_time: 0.25,
        };
        let text = serde_json::to_string(&sample).unwrap();
        assert_eq!(
            text,
            "[\"AWS::ECS::Container|orders\",\"\",30000000,\"Throttle\",0.25]"
        );
        assert_eq!(serde_json::from_str::<Sample>(&text).unwrap(), sample);
        let old: Sample = serde_json::from_str(
            r#"{"src":"AWS::ECS::Container|orders","minute":30000000,"outcome":"Throttle","response_time":0.25}"#,
        )
        .unwrap();
        assert_eq!(old, sample);
        assert!(serde_json::from_str::<Sample>("[\"a\",\"\",1]").is_err());
    }
}
