//! Python bindings of the entities step: the warm path of `EntityExtractor.extract_batch`
//! (shapes, the shape -> plan cache, plans applied to real lines). New shapes are planned
//! by a Python callback (spaCy), once per batch.
use polaris_entities::{BatchError, Candidate, Check, EntityError, IntError, Labels, SharedValues};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

/// `(label, start, end, check)` as in `_ShapePlan.candidates`.
type CandidateTuple = (String, usize, usize, String);

fn entity_error(py: Python<'_>, error: EntityError) -> PyErr {
    match error {
        // Same exception types as the reference raises.
        EntityError::UnknownCheck(_) | EntityError::NoPriority(_) => PyKeyError::new_err(error.to_string()),
        EntityError::Int(IntError::InvalidLiteral(text)) => {
            let repr = PyString::new(py, &text).repr().map(|repr| repr.to_string()).unwrap_or(text);
            PyValueError::new_err(format!("invalid literal for int() with base 10: {repr}"))
        }
        other => PyValueError::new_err(other.to_string()),
    }
}

fn candidates_of(tuples: Vec<CandidateTuple>) -> Result<Vec<Candidate>, EntityError> {
    tuples
        .into_iter()
        .map(|(label, start, end, check)| Ok(Candidate { label, start, end, check: check.parse::<Check>()? }))
        .collect()
}

/// EntityPlans(priority: dict[str, int], cache_size: int, entity_type=None, shared_entities=65536)
///
/// `priority` and `cache_size` are those of the `EntityExtractor` whose plans this caches.
/// `extract_batch` returns per text a list of `entity_type(label, text, start, end)`, or of
/// `(label, text, start, end)` tuples without an `entity_type`; offsets are code points.
/// `entity_type` must make immutable objects (the frozen `Entity`): up to `shared_entities`
/// of them are kept and returned again for equal entities (0: a new object every time).
#[pyclass(module = "polaris_native", name = "EntityPlans")]
pub struct PyEntityPlans {
    plans: polaris_entities::EntityPlans,
    /// Python str of each label id, made once.
    label_names: Vec<Py<PyString>>,
    entity_type: Option<PyObject>,
    /// Objects of `entity_type` already made, shared by equal entities.
    entities: SharedValues<PyObject>,
}

#[pymethods]
impl PyEntityPlans {
    #[new]
    #[pyo3(signature = (priority, cache_size, entity_type=None, shared_entities=65_536))]
    fn new(py: Python<'_>, priority: &Bound<'_, PyDict>, cache_size: i64, entity_type: Option<PyObject>, shared_entities: usize) -> PyResult<Self> {
        let mut ranked = Vec::with_capacity(priority.len());
        for (label, rank) in priority.iter() {
            ranked.push((label.extract::<String>()?, rank.extract::<i64>()?));
        }
        let labels = Labels::new(ranked.iter().map(|(label, rank)| (label.as_str(), *rank)))
            .map_err(|error| entity_error(py, error))?;
        // int() refuses more digits than this; the value checks do the same.
        let max_str_digits = py.import("sys")?.call_method0("get_int_max_str_digits")?.extract::<usize>()?;
        Ok(PyEntityPlans {
            plans: polaris_entities::EntityPlans::new(labels, cache_size, max_str_digits),
            label_names: Vec::new(),
            entity_type,
            entities: SharedValues::new(shared_entities),
        })
    }

    /// extract_batch(texts: list[str], planner) -> list[list[entity]]
    ///
    /// `planner(shapes: list[str])` is called at most once, with the distinct shapes that have
    /// no cached plan, and returns one sequence of `(label, start, end, check)` candidates per
    /// shape, in order (the `candidates` of `EntityExtractor._plan(shapes)[shape]`).
    fn extract_batch<'py>(&mut self, py: Python<'py>, texts: Vec<Bound<'py, PyString>>, planner: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let lines = texts.iter().map(|text| text.to_str()).collect::<PyResult<Vec<&str>>>()?;
        let plan_shapes = |shapes: &[String]| -> PyResult<Vec<Vec<Candidate>>> {
            let planned: Vec<Vec<CandidateTuple>> = planner.call1((PyList::new(py, shapes)?,))?.extract()?;
            planned.into_iter().map(|tuples| candidates_of(tuples).map_err(|error| entity_error(py, error))).collect()
        };
        let batch = match self.plans.extract_batch(&lines, plan_shapes) {
            Ok(batch) => batch,
            Err(BatchError::Planner(error)) => return Err(error),
            Err(BatchError::Entity(error)) => return Err(entity_error(py, error)),
        };
        let labels = self.plans.labels();
        for id in self.label_names.len()..labels.len() {
            self.label_names.push(PyString::new(py, labels.name(id)).unbind());
        }
        let mut results = Vec::with_capacity(lines.len());
        for (line, range) in lines.iter().zip(&batch.lines) {
            let mut entities = Vec::with_capacity(range.len());
            for found in &batch.found[range.clone()] {
                let text = &line[found.bytes.0..found.bytes.1];
                let fields = || (self.label_names[found.label].bind(py).clone(), PyString::new(py, text), found.start, found.end);
                entities.push(match &self.entity_type {
                    Some(entity_type) => {
                        let make = || entity_type.bind(py).call1(fields()).map(Bound::unbind);
                        self.entities.get_or_make(found, text, make)?.bind(py).clone()
                    }
                    None => fields().into_pyobject(py)?.into_any(),
                });
            }
            results.push(PyList::new(py, entities)?);
        }
        PyList::new(py, results)
    }

    /// insert(shape: str, candidates: Sequence[tuple[str, int, int, str]]) -> None
    ///
    /// Caches the plan of `shape` as the most recently used (evicting beyond the size).
    fn insert(&mut self, py: Python<'_>, shape: &str, candidates: Vec<CandidateTuple>) -> PyResult<()> {
        let candidates = candidates_of(candidates).map_err(|error| entity_error(py, error))?;
        self.plans.insert(shape, &candidates).map_err(|error| entity_error(py, error))
    }

    /// Forget every cached plan and reset the counters.
    fn clear(&mut self) {
        self.plans.clear();
        self.entities.clear();
    }

    fn __len__(&self) -> usize {
        self.plans.len()
    }

    fn __contains__(&self, shape: &str) -> bool {
        self.plans.contains(shape)
    }

    #[getter]
    fn cache_hits(&self) -> u64 {
        self.plans.cache_hits
    }

    #[getter]
    fn cache_misses(&self) -> u64 {
        self.plans.cache_misses
    }
}

/// entity_shapes(texts: list[str]) -> list[str]: `shape_of` of each text.
#[pyfunction]
fn entity_shapes<'py>(py: Python<'py>, texts: Vec<Bound<'py, PyString>>) -> PyResult<Bound<'py, PyList>> {
    let mut shapes = Vec::with_capacity(texts.len());
    for text in &texts {
        shapes.push(PyString::new(py, &polaris_entities::shape_of(text.to_str()?)));
    }
    PyList::new(py, shapes)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEntityPlans>()?;
    m.add_function(wrap_pyfunction!(entity_shapes, m)?)?;
    Ok(())
}
