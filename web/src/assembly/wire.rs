//! The stored JSON forms of [`NodeKey`], [`Sample`] and [`TraceRollup`], written with every
//! trace summary: a node as its `type|name` text, a sample as a five-element array, a rollup
//! as an array of `[minute, src, dst, outcome, bucket, count, response_time]` entries, about half
//! the bytes of field-by-field objects. The forms written by earlier versions still read (a
//! rollup stored as its samples is added up when read).

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{NodeKey, Outcome, RollupCount, RollupKey, Sample, TraceRollup};

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

impl Serialize for TraceRollup {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (k, n) in &self.0 {
            seq.serialize_element(&(
                k.minute,
                &k.src,
                &k.dst,
                k.outcome,
                k.bucket,
                n.count,
                n.response_time,
            ))?;
        }
        seq.end()
    }
}

/// One stored element of a rollup: an entry, or (as earlier versions stored it) a sample.
struct Element(RollupKey, RollupCount);

/// The first field of an element: a minute (an entry) or a node (a sample).
enum First {
    Minute(i64),
    Src(String),
}

struct FirstVisitor;

impl Visitor<'_> for FirstVisitor {
    type Value = First;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a minute or a node")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<First, E> {
        Ok(First::Minute(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<First, E> {
        i64::try_from(v)
            .map(First::Minute)
            .map_err(|_| E::custom("minute out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<First, E> {
        Ok(First::Src(v.to_owned()))
    }
}

impl<'de> Deserialize<'de> for First {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FirstVisitor)
    }
}

fn from_sample(s: Sample) -> Element {
    Element(
        RollupKey {
            minute: s.minute,
            bucket: crate::graph::Histogram::bucket(s.response_time),
            src: s.src,
            dst: s.dst,
            outcome: s.outcome,
        },
        RollupCount {
            count: 1,
            response_time: s.response_time,
        },
    )
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "a rollup entry [minute, src, dst, outcome, bucket, count, response_time] or a sample",
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
        let missing = |i: usize| de::Error::invalid_length(i, &"seven elements, or five");
        match seq.next_element::<First>()?.ok_or_else(|| missing(0))? {
            First::Minute(minute) => Ok(Element(
                RollupKey {
                    minute,
                    src: seq.next_element()?.ok_or_else(|| missing(1))?,
                    dst: seq.next_element()?.ok_or_else(|| missing(2))?,
                    outcome: seq.next_element()?.ok_or_else(|| missing(3))?,
                    bucket: seq.next_element()?.ok_or_else(|| missing(4))?,
                },
                RollupCount {
                    count: seq.next_element()?.ok_or_else(|| missing(5))?,
                    response_time: seq.next_element()?.ok_or_else(|| missing(6))?,
                },
            )),
            First::Src(src) => Ok(from_sample(Sample {
                src,
                dst: seq.next_element()?.ok_or_else(|| missing(1))?,
                minute: seq.next_element()?.ok_or_else(|| missing(2))?,
                outcome: seq.next_element()?.ok_or_else(|| missing(3))?,
                response_time: seq.next_element()?.ok_or_else(|| missing(4))?,
            })),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Element, A::Error> {
        SampleVisitor.visit_map(map).map(from_sample)
    }
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

impl<'de> Deserialize<'de> for TraceRollup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let elements = Vec::<Element>::deserialize(d)?;
        let mut out = TraceRollup::default();
        for Element(k, n) in elements {
            out.add(k, n);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollups_round_trip_and_stored_samples_read_as_their_sum() {
        let sample = |minute, outcome, rt| Sample {
            src: "|web".into(),
            dst: "|db".into(),
            minute,
            outcome,
            response_time: rt,
        };
        let samples = [
            sample(5, Outcome::Ok, 0.25),
            sample(5, Outcome::Ok, 0.25),
            sample(6, Outcome::Fault, 1.0),
        ];
        let rollup = TraceRollup::of(&samples);
        assert_eq!(rollup.0.len(), 2);
        let text = serde_json::to_string(&rollup).unwrap();
        assert!(text.starts_with("[[5,\"|web\",\"|db\",\"Ok\","), "{text}");
        assert_eq!(serde_json::from_str::<TraceRollup>(&text).unwrap(), rollup);
        let old = serde_json::to_string(&samples).unwrap();
        assert_eq!(serde_json::from_str::<TraceRollup>(&old).unwrap(), rollup);
        assert!(serde_json::from_str::<TraceRollup>("[[5,\"a\"]]").is_err());
    }

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
