//! Python bindings of the parse step: `polaris_native.LineParser`.
//!
//! ```text
//! LineParser(catalog_json: str)            # ValueError names what cannot be honoured
//! LineParser.format_names -> list[str]
//! LineParser.tzdb_version -> str            # IANA tz database of the zone rules
//! LineParser.parse_batch(lines: list[str], reference_epoch_s: float,
//!                        source_format: str | None = None) -> list[tuple | None]
//! ```
//! Each tuple is (format, timestamp µs since the epoch UTC | None, level, host, service,
//! message, fields dict | None when empty).  None means "decide this line with the Python
//! reference" (see polaris_parse's module docs).
use polaris_parse::{CatalogSpec, LineParser, Parsed};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

#[pyclass(name = "LineParser", module = "polaris_native", frozen)]
pub struct PyLineParser {
    parser: LineParser,
    /// Interned format names (index = format index), then "unknown".
    names: Vec<Py<PyString>>,
}

/// Per-batch cache of Python strings that repeat across lines (field names, levels,
/// services, hosts), so each is created once per batch.
struct StrCache<'py> {
    py: Python<'py>,
    strings: std::collections::HashMap<String, Bound<'py, PyString>, polaris_parse::structured::FnvBuild>,
}

impl<'py> StrCache<'py> {
    fn get(&mut self, text: &str) -> Bound<'py, PyString> {
        if let Some(found) = self.strings.get(text) {
            return found.clone();
        }
        let created = PyString::new(self.py, text);
        if self.strings.len() < 4096 {
            self.strings.insert(text.to_string(), created.clone());
        }
        created
    }

    fn optional(&mut self, text: Option<&str>) -> Bound<'py, PyAny> {
        match text {
            Some(text) => self.get(text).into_any(),
            None => self.py.None().into_bound(self.py),
        }
    }
}

fn to_tuple<'py>(
    py: Python<'py>,
    owner: &PyLineParser,
    parsed: Parsed,
    cache: &mut StrCache<'py>,
) -> PyResult<Bound<'py, PyTuple>> {
    let name = match parsed.format {
        Some(index) => owner.names[index].bind(py).clone(),
        None => owner.names[owner.names.len() - 1].bind(py).clone(),
    };
    let fields = if parsed.fields.is_empty() {
        py.None().into_bound(py)
    } else {
        let dict = PyDict::new(py);
        for (key, value) in parsed.fields {
            dict.set_item(cache.get(&key), PyString::new(py, &value))?;
        }
        dict.into_any()
    };
    PyTuple::new(
        py,
        [
            name.into_any(),
            parsed.timestamp_micros.into_pyobject(py)?.into_any(),
            cache.optional(parsed.level.as_deref()),
            cache.optional(parsed.host.as_deref()),
            cache.optional(parsed.service.as_deref()),
            PyString::new(py, &parsed.message).into_any(),
            fields,
        ],
    )
}

#[pymethods]
impl PyLineParser {
    #[new]
    fn new(py: Python<'_>, catalog_json: &str) -> PyResult<Self> {
        let spec: CatalogSpec = serde_json::from_str(catalog_json)
            .map_err(|e| PyValueError::new_err(format!("bad native catalog: {e}")))?;
        let parser = LineParser::new(spec).map_err(PyValueError::new_err)?;
        let mut names: Vec<Py<PyString>> = parser.format_names().map(|n| PyString::intern(py, n).unbind()).collect();
        names.push(PyString::intern(py, polaris_parse::UNKNOWN_FORMAT).unbind());
        Ok(PyLineParser { parser, names })
    }

    /// The IANA tz database version of the zone rules (chrono-tz's).
    #[classattr]
    fn tzdb_version() -> &'static str {
        polaris_parse::TZDB_VERSION
    }

    #[getter]
    fn format_names(&self) -> Vec<String> {
        self.parser.format_names().map(str::to_string).collect()
    }

    #[pyo3(signature = (lines, reference_epoch_s, source_format=None))]
    fn parse_batch<'py>(
        &self,
        py: Python<'py>,
        lines: &Bound<'py, PyList>,
        reference_epoch_s: f64,
        source_format: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        let reference = polaris_parse::reference_micros_from_seconds(reference_epoch_s)
            .ok_or_else(|| PyValueError::new_err("reference_epoch_s out of datetime's range"))?;
        let source = match source_format {
            None => None,
            Some(name) => Some(self.parser.format_index(name).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "unknown source format {name:?}; known: {:?}",
                    self.format_names()
                ))
            })?),
        };
        let mut scratch = self.parser.scratch();
        let mut cache = StrCache { py, strings: Default::default() };
        let mut out: Vec<Bound<'py, PyAny>> = Vec::with_capacity(lines.len());
        for item in lines.iter() {
            let text = item.downcast::<PyString>()?;
            // A str with lone surrogates has no UTF-8 form: Python decides that line.
            let Ok(line) = text.to_str() else {
                out.push(py.None().into_bound(py));
                continue;
            };
            match self.parser.parse(line, source, reference, &mut scratch) {
                Ok(parsed) => out.push(to_tuple(py, self, parsed, &mut cache)?.into_any()),
                Err(_) => out.push(py.None().into_bound(py)),
            }
        }
        PyList::new(py, out)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLineParser>()
}
