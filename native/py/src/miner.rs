//! Python bindings of the miner step: `polaris_native.TemplateMiner`, the native
//! counterpart of `workers.steps.templates.TemplateMiner` (same templates, ids and state).
use polaris_miner::{extract_values, TemplateMiner, UNICODE_VERSION};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

fn mask_error(error: polaris_miner::MaskError) -> PyErr {
    PyRuntimeError::new_err(error.to_string())
}

/// Streaming template miner; `add_batch` on the hot path, `to_json`/`from_json` to persist.
#[pyclass(name = "TemplateMiner", module = "polaris_native")]
pub struct PyTemplateMiner {
    inner: TemplateMiner,
    /// Per cluster, the last `(template, template_id)` tuple handed out: lines of a group
    /// share one Python object until its template changes (most lines change nothing).
    pairs: Vec<Option<(u64, Py<PyTuple>)>>,
}

#[pymethods]
impl PyTemplateMiner {
    #[new]
    #[pyo3(signature = (word_values = 4))]
    fn new(word_values: i64) -> Self {
        PyTemplateMiner {
            inner: TemplateMiner::new(word_values),
            pairs: Vec::new(),
        }
    }

    /// The Unicode version of the Python character classes the masks were built with.
    #[classattr]
    #[allow(non_snake_case)]
    fn UNICODE_VERSION() -> &'static str {
        UNICODE_VERSION
    }

    #[getter]
    fn word_values(&self) -> i64 {
        self.inner.word_values()
    }

    /// Mines the lines in order: `(template, template_id)` for each.
    fn add_batch<'py>(
        &mut self,
        py: Python<'py>,
        contents: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for item in contents.try_iter()? {
            let item = item?;
            let content = item.downcast::<PyString>()?.to_str()?;
            let found = self.inner.add(content).map_err(mask_error)?;
            if self.pairs.len() <= found.cluster {
                self.pairs.resize_with(found.cluster + 1, || None);
            }
            let slot = &mut self.pairs[found.cluster];
            let pair = match slot {
                Some((revision, pair)) if *revision == found.revision => pair,
                _ => {
                    let pair = PyTuple::new(py, [found.template, found.template_id])?.unbind();
                    &mut slot.insert((found.revision, pair)).1
                }
            };
            out.append(pair.bind(py))?;
        }
        Ok(out)
    }

    /// Mines one line: `(template, template_id, variables, cluster)` as `TemplateMatch`.
    fn add<'py>(
        &mut self,
        py: Python<'py>,
        content: &str,
    ) -> PyResult<(String, String, Bound<'py, PyTuple>, usize)> {
        let found = self.inner.add(content).map_err(mask_error)?;
        let variables = if found.literals.len() > 1 {
            extract_values(found.literals, content)
        } else {
            Vec::new()
        };
        Ok((
            found.template.to_string(),
            found.template_id.to_string(),
            PyTuple::new(py, variables)?,
            found.cluster,
        ))
    }

    /// Current template of a group, given any id it ever had (or its cluster number).
    fn current_template(
        &mut self,
        template_id_or_cluster: &Bound<'_, PyAny>,
    ) -> PyResult<Option<String>> {
        if let Ok(template_id) = template_id_or_cluster.downcast::<PyString>() {
            return Ok(self
                .inner
                .current_template_by_id(template_id.to_str()?)
                .map(str::to_string));
        }
        let cluster: usize = template_id_or_cluster
            .extract()
            .map_err(|_| PyKeyError::new_err(template_id_or_cluster.clone().unbind()))?;
        match self.inner.current_template(cluster) {
            Some(template) => Ok(Some(template.to_string())),
            None => Err(PyKeyError::new_err(cluster)),
        }
    }

    /// Current template id -> template for every live group.
    fn templates<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (template_id, template) in self.inner.templates() {
            out.set_item(template_id, template)?;
        }
        Ok(out)
    }

    /// `mask(content).split()` and the line's grouping key (every digit run masked).
    fn mask_tokens(&mut self, content: &str) -> PyResult<(Vec<String>, String)> {
        self.inner.mask_tokens(content).map_err(mask_error)
    }

    /// The state as JSON: `json.loads` of it equals the reference's `to_dict()`.
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// A miner restored from `to_json` or from `json.dumps` of the reference's `to_dict()`.
    #[staticmethod]
    fn from_json(state: &str) -> PyResult<Self> {
        let inner =
            TemplateMiner::from_json(state).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyTemplateMiner {
            inner,
            pairs: Vec::new(),
        })
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTemplateMiner>()
}
