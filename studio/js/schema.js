// JSON Schema helpers: a readable field table, a skeleton value, and a form
// that edits an object described by a schema (falls back to raw JSON).

import { h, pretty, parseJson } from "./dom.js";
import { jsonTree } from "./jsontree.js";

function deref(schema, root) {
  let s = schema;
  for (let i = 0; i < 8 && s && s.$ref && root; i++) {
    const path = s.$ref.replace(/^#\//, "").split("/");
    s = path.reduce((acc, k) => (acc ? acc[k] : undefined), root);
  }
  return s || {};
}

export function typeLabel(schema, root) {
  const s = deref(schema, root);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.type === "array") {
    const inner = typeLabel(s.items || {}, root);
    return inner.includes(" | ") ? `(${inner})[]` : `${inner}[]`;
  }
  if (s.type === "object" && s.title && schema.$ref) return s.title;
  if (Array.isArray(s.type)) return s.type.join(" | ");
  if (s.type) return s.type;
  const alts = s.anyOf || s.oneOf;
  if (alts) {
    const labels = [...new Set(alts.map((a) => typeLabel(a, root)))];
    return labels.length > 4 ? `${labels.slice(0, 4).join(" | ")} | …` : labels.join(" | ");
  }
  if (s.title) return s.title;
  return "any";
}

function primitiveType(schema, root) {
  const s = deref(schema, root);
  if (s.enum) return "enum";
  let t = s.type;
  if (!t && (s.anyOf || s.oneOf)) {
    const nonNull = (s.anyOf || s.oneOf).map((a) => deref(a, root)).filter((a) => a.type !== "null");
    if (nonNull.length === 1) return primitiveType(nonNull[0], root);
    return "json";
  }
  if (Array.isArray(t)) t = t.find((x) => x !== "null");
  return ["string", "integer", "number", "boolean"].includes(t) ? t : "json";
}

/** A definition list of the top-level properties of an object schema. */
export function schemaFields(schema) {
  if (!schema) return h("p", { class: "muted", text: "The server did not provide this schema." });
  const props = schema.properties || {};
  const names = Object.keys(props);
  if (!names.length) return h("p", { class: "muted", text: "No fields." });
  const required = new Set(schema.required || []);
  return h("table", { class: "schema-table" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Field" }), h("th", { scope: "col", text: "Type" }), h("th", { scope: "col", text: "Notes" }))),
    h("tbody", {}, names.map((name) => {
      const p = deref(props[name], schema);
      const notes = [required.has(name) ? "required" : null, p.default !== undefined ? `default ${JSON.stringify(p.default)}` : null, p.description ? p.description.split("\n")[0] : null].filter(Boolean);
      return h("tr", {}, h("th", { scope: "row" }, h("code", { text: name })), h("td", { class: "mono", text: typeLabel(props[name], schema) }), h("td", { class: "muted", text: notes.join(" · ") }));
    })));
}

/** The schema as fields plus its raw JSON in a disclosure. */
export function schemaView(schema, title) {
  return h("div", { class: "schema-view" },
    schemaFields(schema),
    schema ? h("details", { class: "raw-json" }, h("summary", { text: `Raw JSON schema${title ? ` (${title})` : ""}` }), jsonTree(schema, { expandDepth: 1, label: `${title || ""} schema` })) : null);
}

export function skeleton(schema) {
  if (!schema || !schema.properties) return {};
  const out = {};
  for (const [name, prop] of Object.entries(schema.properties)) {
    const p = deref(prop, schema);
    if (p.default !== undefined) out[name] = p.default;
    else {
      const t = primitiveType(p, schema);
      out[name] = t === "string" || t === "enum" ? "" : t === "integer" || t === "number" ? 0 : t === "boolean" ? false : null;
    }
  }
  return out;
}

/**
 * A form for an object schema with simple fields. Returns {el, read()} where
 * read() answers {ok, value, error}. Complex fields are JSON text areas.
 */
export function schemaForm(schema, initial = {}, idPrefix = "f") {
  const props = (schema && schema.properties) || {};
  const readers = [];
  const el = h("div", { class: "schema-form" });
  for (const [name, prop] of Object.entries(props)) {
    const p = deref(prop, schema);
    const t = primitiveType(p, schema);
    const id = `${idPrefix}-${name.replace(/[^\w-]/g, "_")}`;
    const value = initial[name] !== undefined ? initial[name] : p.default;
    let input;
    if (t === "boolean") {
      // Three states, so an untouched field is left out of the input rather than sent as false.
      input = h("select", { id }, [["", "—"], ["true", "true"], ["false", "false"]].map(([v, label]) =>
        h("option", { value: v, text: label, selected: value !== undefined && value !== null && String(value) === v })));
      readers.push(() => (input.value ? [name, input.value === "true"] : null));
    } else if (t === "enum") {
      input = h("select", { id }, h("option", { value: "", text: "—" }), p.enum.map((v) => h("option", { value: JSON.stringify(v), text: String(v), selected: v === value })));
      readers.push(() => (input.value ? [name, JSON.parse(input.value)] : null));
    } else if (t === "string") {
      input = h("input", { id, type: "text", value: value ?? "", placeholder: p.description ? p.description.split("\n")[0] : "" });
      readers.push(() => (input.value !== "" ? [name, input.value] : null));
    } else if (t === "integer" || t === "number") {
      input = h("input", { id, type: "number", step: t === "integer" ? "1" : "any", value: value ?? "" });
      readers.push(() => (input.value !== "" ? [name, Number(input.value)] : null));
    } else {
      input = h("textarea", { id, rows: 3, class: "mono", spellcheck: "false", value: value === undefined || value === null ? "" : pretty(value) });
      readers.push(() => {
        const r = parseJson(input.value, undefined);
        if (!r.ok) throw new Error(`${name}: ${r.error}`);
        return r.value === undefined ? null : [name, r.value];
      });
    }
    el.append(h("div", { class: "field" }, h("label", { for: id }, name, h("span", { class: "muted small", text: ` ${typeLabel(prop, schema)}` })), input));
  }
  return {
    el,
    read() {
      try {
        const out = {};
        for (const r of readers) {
          const kv = r();
          if (kv) out[kv[0]] = kv[1];
        }
        return { ok: true, value: out };
      } catch (err) {
        return { ok: false, error: err.message };
      }
    },
  };
}

/** True when the input schema looks like a chat graph (has a `messages` list). */
export function isChatSchema(schema) {
  return Boolean(schema && schema.properties && schema.properties.messages);
}
