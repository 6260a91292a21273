//! The template miner step: a port of `workers.steps.templates.TemplateMiner` (the
//! reference, and the readable specification) that gives identical templates, ids and
//! persisted state, so a fleet can switch implementation without losing its templates.
//!
//! A line is masked (`masking`), grouped with similar lines (this module: leaves, merges,
//! families and the vocabulary that vouches for them) and given its group's template
//! (`cluster`); the reference module tells the full story. `state` reads and writes the
//! reference's `to_dict()` JSON.
mod cluster;
mod masking;
mod py_text;
mod state;

use std::collections::BTreeSet;

use indexmap::IndexMap;

use cluster::looks_variable;
pub use cluster::Cluster;
use masking::Masker;
pub use masking::{extract_values, template_id, MaskError, WILDCARD};
pub use polaris_pyunicode::UNICODE_VERSION;
pub use state::StateError;

type Hasher = foldhash::fast::RandomState;
type OrderedMap<K, V> = IndexMap<K, V, Hasher>;

/// What the miner made of one line.
pub struct TemplateMatch<'m> {
    pub template: &'m str,
    pub template_id: &'m str,
    pub cluster: usize,
    /// The template split at `<*>`, for `extract_values`.
    pub literals: &'m [String],
    /// Changes whenever the cluster's template (and id) does.
    pub revision: u64,
}

/// Streaming template miner; feed lines with `add`, persist with `to_json`.
///
/// Every collection keeps the insertion order of the reference's dicts: the persisted
/// state lists them in that order, and restored miners iterate them identically.
pub struct TemplateMiner {
    /// Distinct plain words a position must show before it is a variable.
    word_values: i64,
    clusters: Vec<Cluster>,
    /// Absorbed cluster -> absorbing cluster (indexed by cid) ...
    parent: Vec<Option<usize>>,
    /// ... and the absorbed clusters in the order they were absorbed.
    parent_order: Vec<usize>,
    /// Grouping key -> cluster.
    leaves: OrderedMap<String, usize>,
    /// Token count -> live clusters.
    by_length: OrderedMap<usize, Vec<usize>>,
    /// Near-identical clusters by the word they differ in (see `join_family`).
    families: OrderedMap<String, OrderedMap<String, usize>>,
    /// Every template id ever issued -> cluster.
    aliases: OrderedMap<String, usize>,
    /// Preceding token -> words seen varying after it.
    vocab: OrderedMap<String, BTreeSet<String>>,
    masker: Masker,
}

impl TemplateMiner {
    pub fn new(word_values: i64) -> Self {
        TemplateMiner {
            word_values,
            clusters: Vec::new(),
            parent: Vec::new(),
            parent_order: Vec::new(),
            leaves: OrderedMap::default(),
            by_length: OrderedMap::default(),
            families: OrderedMap::default(),
            aliases: OrderedMap::default(),
            vocab: OrderedMap::default(),
            masker: Masker::default(),
        }
    }

    pub fn word_values(&self) -> i64 {
        self.word_values
    }

    /// Mines one line: the current template of its group and that template's id.
    pub fn add(&mut self, content: &str) -> Result<TemplateMatch<'_>, MaskError> {
        let masked = self.masker.mask_tokens(content)?;
        let cid = match self.leaves.get(&masked.key) {
            // a line shape seen before maps straight to its group
            Some(&cid) => cid,
            None => {
                let key: Vec<&str> = masked.key.split(' ').collect();
                let cid = place(
                    &mut Grouping {
                        word_values: self.word_values,
                        clusters: &mut self.clusters,
                        parent: &mut self.parent,
                        parent_order: &mut self.parent_order,
                        by_length: &mut self.by_length,
                        families: &mut self.families,
                        vocab: &mut self.vocab,
                    },
                    &key,
                    &masked.tokens,
                );
                self.leaves.insert(masked.key.clone(), cid);
                cid
            }
        };
        let cid = if self.parent[cid].is_some() {
            find(&mut self.parent, cid)
        } else {
            cid
        };
        let cluster = &mut self.clusters[cid];
        cluster.observe(&masked.tokens);
        if cluster.hashed != cluster.template {
            // hash only when the template changed
            cluster.tid = template_id(&cluster.template);
            cluster.hashed.clone_from(&cluster.template);
            cluster.literals = cluster
                .template
                .split(WILDCARD)
                .map(str::to_string)
                .collect();
            cluster.revision += 1;
            self.aliases.entry(cluster.tid.clone()).or_insert(cid);
        }
        let cluster = &self.clusters[cid];
        Ok(TemplateMatch {
            template: &cluster.template,
            template_id: &cluster.tid,
            cluster: cid,
            literals: &cluster.literals,
            revision: cluster.revision,
        })
    }

    /// Current template of a group, given any id it ever had.
    pub fn current_template_by_id(&mut self, template_id: &str) -> Option<&str> {
        let cid = *self.aliases.get(template_id)?;
        self.current_template(cid)
    }

    /// Current template of a group, given any cluster it absorbed (or itself).
    pub fn current_template(&mut self, cid: usize) -> Option<&str> {
        if cid >= self.clusters.len() {
            return None;
        }
        let root = find(&mut self.parent, cid);
        Some(&self.clusters[root].template)
    }

    /// Current template id -> template for every live group.
    pub fn templates(&self) -> OrderedMap<String, String> {
        self.live()
            .map(|c| (template_id(&c.template), c.template.clone()))
            .collect()
    }

    fn live(&self) -> impl Iterator<Item = &Cluster> {
        self.by_length
            .values()
            .flatten()
            .map(|&cid| &self.clusters[cid])
    }

    /// `mask(content).split()` and the grouping key, as the reference's `mask_tokens`.
    pub fn mask_tokens(&mut self, content: &str) -> Result<(Vec<String>, String), MaskError> {
        let masked = self.masker.mask_tokens(content)?;
        Ok((
            masked.tokens.iter().map(|t| t.to_string()).collect(),
            masked.key,
        ))
    }
}

/// The grouping state that placing a new key touches (all of the miner but the
/// masking memo and the leaf index, which `add` borrows meanwhile).
struct Grouping<'m> {
    word_values: i64,
    clusters: &'m mut Vec<Cluster>,
    parent: &'m mut Vec<Option<usize>>,
    parent_order: &'m mut Vec<usize>,
    by_length: &'m mut OrderedMap<usize, Vec<usize>>,
    families: &'m mut OrderedMap<String, OrderedMap<String, usize>>,
    vocab: &'m mut OrderedMap<String, BTreeSet<String>>,
}

/// Root of a cluster, compressing the path (the compressed links are persisted too).
fn find(parent: &mut [Option<usize>], cid: usize) -> usize {
    let mut root = cid;
    while let Some(up) = parent[root] {
        root = up;
    }
    let mut cid = cid;
    while cid != root {
        let Some(up) = parent[cid] else { break };
        parent[cid] = Some(root);
        cid = up;
    }
    root
}

/// Cluster for a new grouping key: an existing one, a merge, or a new one.
fn place<S: AsRef<str>>(g: &mut Grouping<'_>, key: &[&str], tokens: &[S]) -> usize {
    let Some((best, diffs)) = closest(g, key) else {
        return new_cluster(g, key, tokens, None);
    };
    if diffs.is_empty() {
        return best;
    }
    // as in Drain, a leading word that differs makes a different event
    let words: Vec<usize> = diffs
        .iter()
        .copied()
        .filter(|&i| !looks_variable(&g.clusters[best].key[i], key[i], i == 0))
        .collect();
    if words.is_empty() {
        generalise(&mut g.clusters[best], &diffs);
        return best;
    }
    let constants = g.clusters[best]
        .key
        .iter()
        .filter(|t| *t != WILDCARD)
        .count() as i64
        - diffs.len() as i64;
    if words.len() == 1 && words[0] > 0 && constants >= 2 {
        return join_family(g, best, key, tokens, words[0], &diffs);
    }
    new_cluster(g, key, tokens, Some(best))
}

/// Same-length cluster with the fewest differing positions (at most half of them).
fn closest(g: &Grouping<'_>, key: &[&str]) -> Option<(usize, Vec<usize>)> {
    let limit = key.len() / 2;
    let mut best: Option<(usize, Vec<usize>)> = None;
    let candidates = g.by_length.get(&key.len())?;
    let mut diffs = Vec::new();
    for &cid in candidates {
        // more differences than allowed, or than the best so far, cannot win: stop early
        let bound = best
            .as_ref()
            .map_or(limit, |(_, d)| limit.min(d.len().saturating_sub(1)));
        if best.as_ref().is_some_and(|(_, d)| d.is_empty()) {
            break;
        }
        diffs.clear();
        let mut within = true;
        for (i, (a, b)) in g.clusters[cid].key.iter().zip(key).enumerate() {
            if a != b && a != WILDCARD {
                if diffs.len() == bound {
                    within = false;
                    break;
                }
                diffs.push(i);
            }
        }
        if within {
            let done = diffs.is_empty();
            best = Some((cid, diffs.clone()));
            if done {
                break;
            }
        }
    }
    best
}

fn generalise(cluster: &mut Cluster, positions: &[usize]) {
    for &i in positions {
        if let Some(token) = cluster.key.get_mut(i) {
            *token = WILDCARD.to_string();
        }
    }
}

fn new_cluster<S: AsRef<str>>(
    g: &mut Grouping<'_>,
    key: &[&str],
    tokens: &[S],
    like: Option<usize>,
) -> usize {
    let cid = g.clusters.len();
    let mut cluster_key: Vec<String> = key.iter().map(|t| t.to_string()).collect();
    if let Some(like) = like {
        // inherit generalised positions so families line up
        for (slot, token) in cluster_key.iter_mut().zip(&g.clusters[like].key) {
            if token == WILDCARD {
                *slot = WILDCARD.to_string();
            }
        }
    }
    let tokens = tokens.iter().map(|t| t.as_ref().to_string()).collect();
    g.clusters.push(Cluster::new(cid, tokens, cluster_key));
    g.parent.push(None);
    g.by_length.entry(key.len()).or_default().push(cid);
    cid
}

/// Clusters differing by one word at `word`; merged once it shows enough values:
/// `word_values` distinct words, or two when every one of them already varied after the
/// same preceding token in a group merged before.
fn join_family<S: AsRef<str>>(
    g: &mut Grouping<'_>,
    best: usize,
    key: &[&str],
    tokens: &[S],
    word: usize,
    diffs: &[usize],
) -> usize {
    let best_key = &g.clusters[best].key;
    let rest: Vec<&str> = best_key
        .iter()
        .enumerate()
        .map(|(i, t)| if i == word { "" } else { t.as_str() })
        .collect();
    let family_key = format!("{}|{}|{}", key.len(), word, rest.join("\x1f"));
    let best_word = best_key[word].clone();
    let family = g.families.entry(family_key.clone()).or_insert_with(|| {
        let mut family = OrderedMap::default();
        family.insert(best_word, best);
        family
    });
    let vouched = g
        .vocab
        .get(&best_key[word - 1])
        .is_some_and(|known| known.contains(key[word]) && family.keys().all(|w| known.contains(w)));
    if ((family.len() + 1) as i64) < g.word_values && !vouched {
        let cid = new_cluster(g, key, tokens, Some(best));
        if let Some(family) = g.families.get_mut(&family_key) {
            family.insert(key[word].to_string(), cid);
        }
        return cid;
    }
    generalise(&mut g.clusters[best], diffs);
    let family = g.families.shift_remove(&family_key).unwrap_or_default();
    for &member in family.values() {
        let member = find(g.parent, member);
        merge(g, best, member);
    }
    let context = g.clusters[best].key[word - 1].clone();
    let mut words: Vec<&str> = family.keys().map(String::as_str).collect();
    words.push(key[word]);
    learn(g, &context, &words);
    best
}

/// Words that varied after `context`; merges the families they now vouch for.
fn learn(g: &mut Grouping<'_>, context: &str, words: &[&str]) {
    if context == WILDCARD {
        return;
    }
    let known = g.vocab.entry(context.to_string()).or_default();
    if words.iter().all(|w| known.contains(*w)) {
        return;
    }
    known.extend(words.iter().map(|w| w.to_string()));
    let family_keys: Vec<String> = g.families.keys().cloned().collect();
    for family_key in family_keys {
        let Some((word, preceding)) = state::family_context(&family_key) else {
            continue;
        };
        let Some(family) = g.families.get(&family_key) else {
            continue;
        };
        let known = &g.vocab[context];
        if preceding != context || !family.keys().all(|w| known.contains(w)) {
            continue;
        }
        let members: Vec<usize> = family.values().copied().collect();
        let members: Vec<usize> = members.into_iter().map(|cid| find(g.parent, cid)).collect();
        let Some(&into) = members.first() else {
            continue;
        };
        generalise(&mut g.clusters[into], &[word]);
        for member in members {
            merge(g, into, member);
        }
        g.families.shift_remove(&family_key);
    }
}

fn merge(g: &mut Grouping<'_>, into: usize, cid: usize) {
    if cid == into {
        return;
    }
    let other = g.clusters[cid].clone();
    g.clusters[into].absorb(&other);
    if g.parent[cid].is_none() {
        g.parent_order.push(cid);
    }
    g.parent[cid] = Some(into);
    if let Some(ids) = g.by_length.get_mut(&other.key.len()) {
        if let Some(at) = ids.iter().position(|&id| id == cid) {
            ids.remove(at);
        }
    }
}
