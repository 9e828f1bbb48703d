//! Learning a plugin's schema from its own config type instead of a second copy of it.
//!
//! A key is *known* when the plugin's decoder refuses it holding a value no field type accepts
//! (an object of arrays of objects); a decoder that ignores unknown keys accepts it, so the key
//! is unknown. A known key's own value is then decoded alone to find type errors, and a value
//! error of the whole config is pinned to the key whose value alone reproduces it.

use serde_json::{Map, Value, json};

/// Keys every plugin object may hold (the runtime's and the conventions'), never probed.
pub(crate) const COMMON_KEYS: [&str; 9] = [
    "cniVersion",
    "name",
    "type",
    "capabilities",
    "ipam",
    "dns",
    "args",
    "runtimeConfig",
    "prevResult",
];

fn sentinel() -> Value {
    json!({"\u{1}cni-conflist-probe": [[{}]]})
}

/// What probing found about one plugin object's own keys.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// Keys the plugin ignores.
    pub unknown: Vec<String>,
    /// Keys whose value the plugin cannot decode, with the decoder's message.
    pub type_errors: Vec<(String, String)>,
}

/// Probes every non-common key of `object` with `decode` (the plugin's field type decoder).
pub(crate) fn probe(
    object: &Map<String, Value>,
    skip: &[&str],
    decode: &dyn Fn(Value) -> Result<(), String>,
) -> Probe {
    let mut out = Probe::default();
    for (key, value) in object {
        if COMMON_KEYS.contains(&key.as_str())
            || skip.contains(&key.as_str())
            || key.starts_with("cni.dev/")
        {
            continue;
        }
        let alone = |v: Value| {
            let mut m = Map::new();
            m.insert(key.clone(), v);
            decode(Value::Object(m))
        };
        if alone(sentinel()).is_ok() {
            out.unknown.push(key.clone());
        } else if let Err(e) = alone(value.clone()) {
            out.type_errors.push((key.clone(), e));
        }
    }
    out
}

/// A plugin's validating loader: the whole plugin object in, its error message out.
pub(crate) type Loader = dyn Fn(&Map<String, Value>) -> Result<(), String>;

/// The key of `object` whose value alone makes `load` fail with `message`, if any. `base` holds
/// the keys every trial keeps (name, type, cniVersion).
pub(crate) fn blame(
    object: &Map<String, Value>,
    base: &Map<String, Value>,
    message: &str,
    load: &Loader,
) -> Option<String> {
    object
        .iter()
        .filter(|(k, _)| !base.contains_key(k.as_str()))
        .find(|(key, value)| {
            let mut trial = base.clone();
            trial.insert((*key).clone(), (*value).clone());
            load(&trial).err().as_deref() == Some(message)
        })
        .map(|(k, _)| k.clone())
}

/// The JSON field names a `#[derive(Deserialize)]` struct declares (serde hands them to
/// `deserialize_struct`), for "did you mean" hints. Empty for types that are not plain structs.
pub(crate) fn field_names<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};

    struct Capture<'a>(&'a mut &'static [&'static str]);

    impl<'de> de::Deserializer<'de> for Capture<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("field probe"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("field probe"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Capture(&mut fields));
    fields
}

/// The known name closest to a misspelt `key`: same letters ignoring case, or at most two edits.
pub(crate) fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        return Some(k);
    }
    let lower = key.to_ascii_lowercase();
    let prefix = |a: &str, b: &str| a.len() >= 4 && b.starts_with(a);
    if let Some(k) = known.iter().find(|k| {
        let k = k.to_ascii_lowercase();
        prefix(&k, &lower) || prefix(&lower, &k)
    }) {
        return Some(k);
    }
    known
        .iter()
        .map(|k| {
            (
                distance(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Fields {
        #[serde(default)]
        mtu: u32,
        #[serde(default, rename = "isGateway")]
        is_gateway: bool,
        #[serde(default)]
        names: Vec<String>,
    }

    fn decode(v: Value) -> Result<(), String> {
        serde_json::from_value::<Fields>(v)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_and_wrong_types() {
        let obj = json!({"type": "x", "mtu": "9000", "isGateway": true, "names": [], "isgateway": 1, "bogus": {}});
        let p = probe(obj.as_object().unwrap(), &[], &decode);
        assert_eq!(p.unknown, vec!["bogus".to_owned(), "isgateway".to_owned()]);
        assert_eq!(p.type_errors.len(), 1);
        assert_eq!(p.type_errors[0].0, "mtu");
        assert!(
            p.type_errors[0].1.contains("expected u32"),
            "{:?}",
            p.type_errors
        );
    }

    #[test]
    fn field_names_and_suggestions() {
        let fields = field_names::<Fields>();
        assert_eq!(fields, &["mtu", "isGateway", "names"]);
        assert_eq!(suggest("isgateway", fields), Some("isGateway"));
        assert_eq!(suggest("isGatway", fields), Some("isGateway"));
        assert_eq!(suggest("mut", fields), Some("mtu"));
        assert_eq!(suggest("completely", fields), None);
        assert_eq!(
            suggest("mtuSize", fields),
            None,
            "prefixes need four letters"
        );
        assert_eq!(suggest("isGatewayEnabled", fields), Some("isGateway"));
        let bridge = field_names::<bridge::config::BridgeFields>();
        assert!(
            bridge.contains(&"hairpinMode") && bridge.contains(&"vlanTrunk"),
            "{bridge:?}"
        );
    }

    #[test]
    fn blame_finds_the_key() {
        let obj = json!({"type": "x", "mtu": 5, "vlan": 9999});
        let base = json!({"type": "x"});
        let load = |m: &Map<String, Value>| match m.get("vlan").and_then(Value::as_i64) {
            Some(v) if v > 4094 => Err("bad vlan".to_owned()),
            _ => Ok(()),
        };
        let key = blame(
            obj.as_object().unwrap(),
            base.as_object().unwrap(),
            "bad vlan",
            &load,
        );
        assert_eq!(key.as_deref(), Some("vlan"));
    }
}
