// A workflow's typed inputs (SPEC §1) as form fields, and the form's text back to typed values. No DOM.

/** One field per declared input: its control kind and the text it starts with (the default). */
export function formFields(inputs = {}) {
  return Object.entries(inputs).map(([name, spec]) => {
    const type = spec.type ?? "string";
    let control = "text";
    if (Array.isArray(spec.enum) && spec.enum.length) control = "select";
    else if (type === "boolean") control = "checkbox";
    else if (type === "integer" || type === "number") control = "number";
    else if (type === "object" || type === "array") control = "json";
    const initial = spec.default === undefined || spec.default === null ? "" : spec.default;
    const text = control === "json" && initial !== "" ? JSON.stringify(initial) : initial;
    return {
      name,
      type,
      control,
      required: Boolean(spec.required),
      description: spec.description ?? "",
      options: control === "select" ? spec.enum : null,
      initial: control === "checkbox" ? Boolean(initial) : String(text),
    };
  });
}

/** Parse one field's value; `{value}` or `{error}`; `{}` for an empty optional field (the default applies). */
function parseField(field, raw) {
  if (field.control === "checkbox") return { value: Boolean(raw) };
  const text = String(raw ?? "").trim();
  if (text === "") return field.required ? { error: "is required" } : {};
  switch (field.type) {
    case "integer": {
      const value = Number(text);
      return Number.isInteger(value) ? { value } : { error: "must be a whole number" };
    }
    case "number": {
      const value = Number(text);
      return Number.isFinite(value) ? { value } : { error: "must be a number" };
    }
    case "object":
    case "array": {
      try {
        const value = JSON.parse(text);
        const ok = field.type === "array" ? Array.isArray(value) : value && typeof value === "object" && !Array.isArray(value);
        return ok ? { value } : { error: `must be a JSON ${field.type}` };
      } catch {
        return { error: `must be valid JSON (${field.type})` };
      }
    }
    default: {
      if (field.options) {
        // An enum of numbers or booleans keeps its declared type.
        const match = field.options.find((option) => String(option) === text);
        return match === undefined ? { error: `must be one of ${field.options.join(", ")}` } : { value: match };
      }
      return { value: text };
    }
  }
}

/** The request's `inputs` from the form's values: `{inputs, errors}` (errors by field name). */
export function parseInputs(fields, values) {
  const inputs = {};
  const errors = {};
  for (const field of fields) {
    const result = parseField(field, values[field.name]);
    if (result.error) errors[field.name] = result.error;
    else if ("value" in result) inputs[field.name] = result.value;
  }
  return { inputs, errors };
}
