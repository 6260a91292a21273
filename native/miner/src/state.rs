//! The persisted state: the JSON of the reference's `TemplateMiner.to_dict()`, so that
//! either implementation restores the other's state and continues identically.
use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::cluster::{Cluster, Varying};
use crate::masking::{template_id, WILDCARD};
use crate::{OrderedMap, TemplateMiner};

#[derive(Debug)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid template miner state: {}", self.0)
    }
}

impl std::error::Error for StateError {}

fn invalid(what: impl Into<String>) -> StateError {
    StateError(what.into())
}

/// The word position of a family key (`"{len}|{word}|" + rest joined by \x1f`) and the
/// token before it, read back from the key as the reference does.
pub fn family_context(family_key: &str) -> Option<(usize, &str)> {
    let mut parts = family_key.splitn(3, '|');
    let (_, position, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if position.is_empty() || !position.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let word: usize = position.parse().ok()?;
    let preceding = rest.split('\x1f').nth(word.checked_sub(1)?)?;
    Some((word, preceding))
}

impl TemplateMiner {
    /// The reference's `to_dict()` as JSON.
    pub fn to_json(&self) -> String {
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|c| {
                let varying: Vec<Value> =
                    c.varying.iter().map(|v| json!([v.position, v.prefix, v.suffix, v.samples])).collect();
                json!({"cid": c.cid, "tokens": c.tokens, "key": c.key, "size": c.size, "varying": varying})
            })
            .collect();
        let parent: Vec<Value> = self
            .parent_order
            .iter()
            .map(|&cid| json!([cid, self.parent[cid].unwrap_or(cid)]))
            .collect();
        let by_length: Vec<Value> = self
            .by_length
            .iter()
            .map(|(n, ids)| json!([n, ids]))
            .collect();
        let families: Map<String, Value> = self
            .families
            .iter()
            .map(|(k, family)| {
                (
                    k.clone(),
                    Value::Object(family.iter().map(|(w, &c)| (w.clone(), json!(c))).collect()),
                )
            })
            .collect();
        let state = json!({
            "word_values": self.word_values,
            "clusters": clusters,
            "parent": parent,
            "leaves": Value::Object(self.leaves.iter().map(|(k, &c)| (k.clone(), json!(c))).collect()),
            "by_length": by_length,
            "families": Value::Object(families),
            "aliases": Value::Object(self.aliases.iter().map(|(k, &c)| (k.clone(), json!(c))).collect()),
            "vocab": Value::Object(self.vocab.iter().map(|(k, words)| (k.clone(), json!(words))).collect()),
        });
        state.to_string()
    }

    /// Restores a miner from `to_json` (or the reference's `json.dumps(to_dict())`).
    pub fn from_json(text: &str) -> Result<Self, StateError> {
        let data: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let data = data
            .as_object()
            .ok_or_else(|| invalid("not a JSON object"))?;
        let field = |name: &str| {
            data.get(name)
                .ok_or_else(|| invalid(format!("missing {name:?}")))
        };
        let mut miner = TemplateMiner::new(integer(field("word_values")?, "word_values")?);
        for (index, item) in array(field("clusters")?, "clusters")?.iter().enumerate() {
            let cluster = cluster(item)?;
            if cluster.cid != index {
                return Err(invalid(format!(
                    "cluster {index} has cid {}; cids must be 0, 1, 2 ... in order",
                    cluster.cid
                )));
            }
            miner.clusters.push(cluster);
        }
        let count = miner.clusters.len();
        let cid = |value: &Value, what: &str| -> Result<usize, StateError> {
            let cid = index(value, what)?;
            if cid >= count {
                return Err(invalid(format!("{what}: no cluster {cid}")));
            }
            Ok(cid)
        };
        miner.parent = vec![None; count];
        for pair in array(field("parent")?, "parent")? {
            let (child, parent) = pair_of(pair, "parent")?;
            let (child, parent) = (cid(child, "parent")?, cid(parent, "parent")?);
            if miner.parent[child].is_none() {
                miner.parent_order.push(child);
            }
            miner.parent[child] = Some(parent);
        }
        for (leaf, value) in object(field("leaves")?, "leaves")? {
            miner.leaves.insert(leaf.clone(), cid(value, "leaves")?);
        }
        for pair in array(field("by_length")?, "by_length")? {
            let (length, ids) = pair_of(pair, "by_length")?;
            let length = index(length, "by_length")?;
            let ids: Vec<usize> = array(ids, "by_length")?
                .iter()
                .map(|id| cid(id, "by_length"))
                .collect::<Result<_, _>>()?;
            if let Some(&wrong) = ids
                .iter()
                .find(|&&id| miner.clusters[id].key.len() != length)
            {
                return Err(invalid(format!(
                    "by_length: cluster {wrong} is not {length} tokens long"
                )));
            }
            miner.by_length.insert(length, ids);
        }
        for (family_key, members) in object(field("families")?, "families")? {
            if family_context(family_key).is_none_or(|(word, _)| word == 0) {
                return Err(invalid(format!("families: malformed key {family_key:?}")));
            }
            let mut family = OrderedMap::default();
            for (word, value) in object(members, "families")? {
                family.insert(word.clone(), cid(value, "families")?);
            }
            if family.is_empty() {
                return Err(invalid(format!("families: {family_key:?} has no member")));
            }
            miner.families.insert(family_key.clone(), family);
        }
        for (tid, value) in object(field("aliases")?, "aliases")? {
            miner.aliases.insert(tid.clone(), cid(value, "aliases")?);
        }
        if let Some(vocab) = data.get("vocab") {
            for (context, words) in object(vocab, "vocab")? {
                let words: BTreeSet<String> = array(words, "vocab")?
                    .iter()
                    .map(|w| string(w, "vocab"))
                    .collect::<Result<_, _>>()?;
                miner.vocab.insert(context.clone(), words);
            }
        }
        for cluster in &mut miner.clusters {
            cluster.tid = template_id(&cluster.template);
            cluster.hashed.clone_from(&cluster.template);
            cluster.literals = cluster
                .template
                .split(WILDCARD)
                .map(str::to_string)
                .collect();
        }
        Ok(miner)
    }
}

fn cluster(item: &Value) -> Result<Cluster, StateError> {
    let item = object(item, "clusters")?;
    let field = |name: &str| {
        item.get(name)
            .ok_or_else(|| invalid(format!("cluster without {name:?}")))
    };
    let strings = |value: &Value, what: &str| -> Result<Vec<String>, StateError> {
        array(value, what)?
            .iter()
            .map(|v| string(v, what))
            .collect()
    };
    let mut cluster = Cluster::new(
        index(field("cid")?, "cid")?,
        strings(field("tokens")?, "tokens")?,
        strings(field("key")?, "key")?,
    );
    let size = field("size")?;
    cluster.size = size
        .as_u64()
        .ok_or_else(|| invalid(format!("cluster size {size} is not a count")))?;
    for entry in array(field("varying")?, "varying")? {
        let entry = array(entry, "varying")?;
        let [position, prefix, suffix, samples] = entry.as_slice() else {
            return Err(invalid(
                "varying entries are [position, prefix, suffix, samples]",
            ));
        };
        let position = index(position, "varying")?;
        let samples = strings(samples, "varying")?;
        if position >= cluster.tokens.len() || samples.is_empty() {
            return Err(invalid(format!(
                "cluster {}: varying position {position} out of range or without samples",
                cluster.cid
            )));
        }
        let varying = Varying {
            position,
            prefix: string(prefix, "varying")?,
            suffix: string(suffix, "varying")?,
            samples,
        };
        match cluster.varying.iter_mut().find(|v| v.position == position) {
            Some(existing) => *existing = varying,
            None => cluster.varying.push(varying),
        }
    }
    cluster.template = cluster.render();
    Ok(cluster)
}

fn integer(value: &Value, what: &str) -> Result<i64, StateError> {
    value
        .as_i64()
        .ok_or_else(|| invalid(format!("{what}: {value} is not an integer")))
}

fn index(value: &Value, what: &str) -> Result<usize, StateError> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| invalid(format!("{what}: {value} is not a non-negative integer")))
}

fn string(value: &Value, what: &str) -> Result<String, StateError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("{what}: {value} is not a string")))
}

fn array<'v>(value: &'v Value, what: &str) -> Result<&'v Vec<Value>, StateError> {
    value
        .as_array()
        .ok_or_else(|| invalid(format!("{what}: expected a list")))
}

fn object<'v>(value: &'v Value, what: &str) -> Result<&'v Map<String, Value>, StateError> {
    value
        .as_object()
        .ok_or_else(|| invalid(format!("{what}: expected an object")))
}

fn pair_of<'v>(value: &'v Value, what: &str) -> Result<(&'v Value, &'v Value), StateError> {
    match array(value, what)?.as_slice() {
        [first, second] => Ok((first, second)),
        _ => Err(invalid(format!("{what}: expected [key, value] pairs"))),
    }
}
