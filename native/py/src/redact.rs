//! Python bindings of the redact step: `polaris_native.Redactor`.
use polaris_redact::{FieldKind, KindId, Redaction};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

/// Redaction rules compiled natively.
///
/// `Redactor(rules_json, reference=None)`: `rules_json` is
/// `{"rules": [<rule spec>, ...], "field_names": [{"pattern": ..., "kind": ...}, ...]}`
/// with the keys of redaction.yaml (disabled rules already removed, extra ones appended).
/// A rule the native engines cannot honour exactly raises ValueError naming it.
///
/// Text with non-ASCII characters goes to `reference` (a `RedactionRules`: its `redact`
/// and `secret_field_kind`), since Python's Unicode `\w`/`\b`/case folding differ from
/// Rust's; so does the rare text the native engines cannot answer for (the backtracking
/// VM hitting its stack or backtrack limit). Without a reference such text raises
/// ValueError.
#[pyclass(frozen, module = "polaris_native", name = "Redactor")]
pub struct PyRedactor {
    inner: polaris_redact::Redactor,
    kinds: Vec<Py<PyString>>,
    markers: Vec<Py<PyString>>,
    reference: Option<PyObject>,
}

impl PyRedactor {
    fn kinds_tuple<'py>(&self, py: Python<'py>, kinds: &[KindId]) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, kinds.iter().map(|&kind| self.kinds[kind].bind(py)))
    }

    fn reference<'py>(&self, py: Python<'py>) -> PyResult<&Bound<'py, PyAny>> {
        self.reference
            .as_ref()
            .map(|reference| reference.bind(py))
            .ok_or_else(|| {
                PyValueError::new_err(
                    "this text needs the Python reference (non-ASCII): Redactor(..., reference=rules)",
                )
            })
    }

    /// `(text, kinds)` for one str, the same str object when nothing is redacted.
    fn redact_one<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyString>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        // A str with lone surrogates has no UTF-8 form: it is not ASCII either.
        let outcome = match text.to_str() {
            Ok(utf8) => self.inner.redact(utf8),
            Err(_) => Redaction::Reference,
        };
        match outcome {
            Redaction::Unchanged => PyTuple::new(py, [text.as_any(), PyTuple::empty(py).as_any()]),
            Redaction::Redacted { text, kinds } => {
                let kinds = self.kinds_tuple(py, &kinds)?;
                PyTuple::new(py, [PyString::new(py, &text).as_any(), kinds.as_any()])
            }
            Redaction::Reference => Ok(self
                .reference(py)?
                .call_method1("redact", (text,))?
                .downcast_into()?),
        }
    }

    /// The kind name and marker for a secret field name, or None.
    fn field_kind<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyString>,
    ) -> PyResult<Option<(Bound<'py, PyString>, Bound<'py, PyString>)>> {
        let outcome = match name.to_str() {
            Ok(utf8) => self.inner.secret_field_kind(utf8),
            Err(_) => FieldKind::Reference,
        };
        Ok(match outcome {
            FieldKind::Secret(kind) => Some((
                self.kinds[kind].bind(py).clone(),
                self.markers[kind].bind(py).clone(),
            )),
            FieldKind::NotSecret => None,
            FieldKind::Reference => {
                let kind = self
                    .reference(py)?
                    .call_method1("secret_field_kind", (name,))?;
                if kind.is_none() {
                    None
                } else {
                    let kind: Bound<'py, PyString> = kind.downcast_into()?;
                    let marker = PyString::new(py, &format!("[REDACTED:{}]", kind.to_str()?));
                    Some((kind, marker))
                }
            }
        })
    }

    fn redact_fields_one<'py>(
        &self,
        py: Python<'py>,
        fields: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let redacted = PyDict::new(py);
        let mut found: Vec<Bound<'py, PyString>> = Vec::new();
        let mut note = |kind: Bound<'py, PyString>| -> PyResult<()> {
            for seen in &found {
                if seen.as_any().eq(&kind)? {
                    return Ok(());
                }
            }
            found.push(kind);
            Ok(())
        };
        for (name, value) in fields.iter() {
            let name_str = name.downcast::<PyString>()?;
            let kind = self.field_kind(py, name_str)?;
            let value_str = match value.downcast::<PyString>() {
                Ok(value_str) => value_str.clone(),
                // The reference returns a falsy non-str value as it is.
                Err(_) if !value.is_truthy()? => {
                    redacted.set_item(&name, &value)?;
                    continue;
                }
                Err(_) => return Err(PyTypeError::new_err("field values must be str")),
            };
            if let Some((kind, marker)) = kind {
                if value_str.len()? > 0 {
                    redacted.set_item(&name, marker)?;
                    note(kind)?;
                    continue;
                }
            }
            let outcome = match value_str.to_str() {
                Ok(utf8) => self.inner.redact(utf8),
                Err(_) => Redaction::Reference,
            };
            match outcome {
                Redaction::Unchanged => redacted.set_item(&name, &value_str)?,
                Redaction::Redacted { text, kinds } => {
                    redacted.set_item(&name, PyString::new(py, &text))?;
                    for kind in kinds {
                        note(self.kinds[kind].bind(py).clone())?;
                    }
                }
                Redaction::Reference => {
                    let result = self.reference(py)?.call_method1("redact", (&value_str,))?;
                    redacted.set_item(&name, result.get_item(0)?)?;
                    for kind in result.get_item(1)?.try_iter()? {
                        note(kind?.downcast_into()?)?;
                    }
                }
            }
        }
        PyTuple::new(py, [redacted.as_any(), PyTuple::new(py, found)?.as_any()])
    }
}

#[pymethods]
impl PyRedactor {
    #[new]
    #[pyo3(signature = (rules_json, reference=None))]
    fn new(py: Python<'_>, rules_json: &str, reference: Option<PyObject>) -> PyResult<Self> {
        let inner = polaris_redact::Redactor::from_json(rules_json)
            .map_err(|e| PyValueError::new_err(e.0))?;
        let kinds = inner
            .kinds()
            .iter()
            .map(|kind| PyString::intern(py, kind).unbind())
            .collect();
        let markers = (0..inner.kinds().len())
            .map(|kind| PyString::new(py, inner.marker(kind)).unbind())
            .collect();
        Ok(PyRedactor {
            inner,
            kinds,
            markers,
            reference,
        })
    }

    /// `redact(text) -> (text, kinds)`: the redacted text and the distinct kinds redacted,
    /// in first-seen order; the very same str when nothing is redacted.
    fn redact<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyString>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.redact_one(py, text)
    }

    /// `redact_batch(texts: list[str]) -> list[tuple[str, tuple[str, ...]]]`
    fn redact_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for text in texts.iter() {
            out.append(self.redact_one(py, text.downcast::<PyString>()?)?)?;
        }
        Ok(out)
    }

    /// `secret_field_kind(name) -> str | None`
    fn secret_field_kind<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyString>,
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        Ok(self.field_kind(py, name)?.map(|(kind, _marker)| kind))
    }

    /// `redact_fields(fields: dict[str, str]) -> (dict[str, str], kinds)`: a secret-named
    /// field replaced whole, the others by the text rules; a new dict.
    fn redact_fields<'py>(
        &self,
        py: Python<'py>,
        fields: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.redact_fields_one(py, fields)
    }

    /// `redact_fields_batch(list[dict[str, str]]) -> list[tuple[dict[str, str], kinds]]`
    fn redact_fields_batch<'py>(
        &self,
        py: Python<'py>,
        batch: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for fields in batch.iter() {
            out.append(self.redact_fields_one(py, fields.downcast::<PyDict>()?)?)?;
        }
        Ok(out)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRedactor>()
}
