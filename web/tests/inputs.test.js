import { test } from "node:test";
import assert from "node:assert/strict";
import { formFields, parseInputs } from "../lib/inputs.js";

const declared = {
  environment: { type: "string", enum: ["staging", "production"], default: "staging" },
  replicas: { type: "integer", default: 2 },
  ratio: { type: "number" },
  dry_run: { type: "boolean", default: false },
  tags: { type: "array" },
  note: { type: "string", required: true },
};

test("each declared input gets a control of its kind, starting at its default", () => {
  const fields = Object.fromEntries(formFields(declared).map((f) => [f.name, f]));
  assert.equal(fields.environment.control, "select");
  assert.deepEqual(fields.environment.options, ["staging", "production"]);
  assert.equal(fields.environment.initial, "staging");
  assert.equal(fields.replicas.control, "number");
  assert.equal(fields.replicas.initial, "2");
  assert.equal(fields.dry_run.control, "checkbox");
  assert.equal(fields.dry_run.initial, false);
  assert.equal(fields.tags.control, "json");
  assert.equal(fields.note.required, true);
});

test("form text becomes typed inputs; empty optional fields are left to their defaults", () => {
  const fields = formFields(declared);
  const { inputs, errors } = parseInputs(fields, {
    environment: "production", replicas: "3", ratio: "", dry_run: true, tags: '["a"]', note: "hi",
  });
  assert.deepEqual(errors, {});
  assert.deepEqual(inputs, { environment: "production", replicas: 3, dry_run: true, tags: ["a"], note: "hi" });
});

test("bad values are named per field and never sent", () => {
  const fields = formFields(declared);
  const { errors } = parseInputs(fields, { replicas: "2.5", ratio: "x", tags: "{", note: " ", environment: "prod" });
  assert.equal(errors.replicas, "must be a whole number");
  assert.equal(errors.ratio, "must be a number");
  assert.match(errors.tags, /valid JSON/);
  assert.equal(errors.note, "is required");
  assert.match(errors.environment, /one of staging, production/);
});
