// The API reference at /api/docs, drawn by this page from /api/openapi.json:
// no Swagger UI or Redoc bundle, so the server works offline and the page
// stays a few KB. Every string of the document is rendered as text (Preact
// text nodes), never as markup: the document describes user-facing fields
// and must not be able to put elements on the page.

import { createContext, Fragment } from 'preact';
import type { ComponentChildren } from 'preact';
import { useContext, useEffect, useMemo, useState } from 'preact/hooks';
import { errorText, get } from '../api';

type Obj = Record<string, unknown>;

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
/// Schemas nest without limit in principle; past this depth the view says
/// "…" (a document that deep is unreadable on a phone anyway).
const MAX_DEPTH = 10;
/// `$ref` chains (a parameter pointing at a parameter...) are followed this
/// far, so a document with a cycle cannot hang the page.
const MAX_REF_HOPS = 8;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');
/// A JSON value as a reader would type it (enum values, defaults, examples).
const lit = (v: unknown): string => JSON.stringify(v) ?? String(v);
/// An id fragment: `/api/channels/{name}` -> `api-channels-name`.
const slug = (s: string) => s.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^-+|-+$/g, '');

/// The value at a local JSON pointer (`#/components/schemas/Channel`).
function pointer(doc: Obj, ref: string): unknown {
  let at: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    let key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    try {
      key = decodeURIComponent(key);
    } catch {
      // Not percent-encoded after all: the key as written.
    }
    if (!isObj(at) || !Object.prototype.hasOwnProperty.call(at, key)) return undefined;
    at = at[key];
  }
  return at;
}

/// A parameter, request body, response or header object, its `$ref`s
/// followed (schemas keep theirs: they are drawn as links).
function deref(doc: Obj, v: unknown): Obj {
  let o = obj(v);
  for (let hops = 0; typeof o.$ref === 'string' && o.$ref.startsWith('#/') && hops < MAX_REF_HOPS; hops++) {
    const target = pointer(doc, o.$ref);
    if (!isObj(target)) break;
    o = target;
  }
  return o;
}

interface Operation {
  method: string;
  path: string;
  id: string;
  op: Obj;
  params: Obj[];
}

interface Group {
  name: string;
  id: string;
  description: string;
  ops: Operation[];
}

interface Model {
  doc: Obj;
  groups: Group[];
  /// Component schema name -> its section's id.
  schemas: Map<string, string>;
  /// Security scheme name -> its entry's id.
  schemes: Map<string, string>;
}

/// Untagged operations are grouped by path: `/api/channels/{name}` under
/// "channels", `/whip` under "whip".
function pathGroup(path: string): string {
  const parts = path.split('/').filter(Boolean);
  return (parts[0] === 'api' && parts.length > 1 ? parts[1] : parts[0]) || '/';
}

function buildModel(doc: Obj): Model {
  const used = new Set<string>();
  const unique = (base: string) => {
    let id = base;
    for (let n = 2; used.has(id); n++) id = `${base}-${n}`;
    used.add(id);
    return id;
  };
  const groups = new Map<string, Group>();
  const group = (name: string, description = '') => {
    let g = groups.get(name);
    if (!g) groups.set(name, (g = { name, id: unique(`tag-${slug(name)}`), description, ops: [] }));
    return g;
  };
  // Declared tags first, in their order, with their descriptions.
  for (const t of arr(doc.tags)) {
    const name = str(obj(t).name);
    if (name) group(name, str(obj(t).description));
  }
  for (const [path, rawItem] of Object.entries(obj(doc.paths))) {
    const item = deref(doc, rawItem);
    const shared = arr(item.parameters).map((p) => deref(doc, p));
    for (const [method, op] of Object.entries(item)) {
      if (!METHODS.includes(method) || !isObj(op)) continue;
      const own = arr(op.parameters).map((p) => deref(doc, p));
      // An operation's parameter replaces the path's one of the same name and place.
      const key = (p: Obj) => `${str(p.in)}:${str(p.name)}`;
      const params = [...shared.filter((p) => !own.some((q) => key(q) === key(p))), ...own];
      const id = unique(`op-${method}-${slug(path)}`);
      group(str(arr(op.tags)[0]) || pathGroup(path)).ops.push({ method, path, id, op, params });
    }
  }
  const components = obj(doc.components);
  const schemas = new Map<string, string>();
  for (const name of Object.keys(obj(components.schemas))) schemas.set(name, unique(`schema-${slug(name)}`));
  const schemes = new Map<string, string>();
  for (const name of Object.keys(obj(components.securitySchemes))) schemes.set(name, unique(`auth-${slug(name)}`));
  return { doc, groups: [...groups.values()].filter((g) => g.ops.length > 0), schemas, schemes };
}

const ModelContext = createContext<Model | null>(null);

/// Descriptions are CommonMark, mostly doc comments: paragraphs apart by a
/// blank line, a single line break only where the source comment wrapped
/// (a space), except before a list item. `code spans` are the one bit of
/// inline markup worth drawing; everything else stays as written.
function Text({ text, class: cls = 'desc' }: { text: unknown; class?: string }) {
  const t = str(text).trim();
  if (!t) return null;
  const paragraphs = t.split(/\n[ \t]*\n/).map((p) => p.replace(/[ \t]*\n(?![ \t]*([-*+]|\d+[.)])[ \t])[ \t]*/g, ' '));
  return (
    <>
      {paragraphs.map((p, n) => (
        <p class={cls} key={n}>{codeSpans(p)}</p>
      ))}
    </>
  );
}

function codeSpans(t: string): ComponentChildren {
  const parts = t.split('`');
  // An unmatched backtick stays a backtick.
  if (parts.length % 2 === 0) parts.splice(-2, 2, `${parts[parts.length - 2]}\`${parts[parts.length - 1]}`);
  return parts.map((x, i) => (i % 2 ? <code key={i}>{x}</code> : x));
}

function RefLink({ to }: { to: string }) {
  const model = useContext(ModelContext);
  const m = to.match(/^#\/components\/schemas\/(.+)$/);
  const name = m ? m[1].replace(/~1/g, '/').replace(/~0/g, '~') : to;
  const id = m ? model?.schemas.get(name) : undefined;
  return id ? <a href={`#${id}`} class="mono" data-ref={name}>{name}</a> : <code>{to}</code>;
}

/// `oneOf: [X, {type: null}]`, `allOf: [X]` (utoipa's forms for an
/// optional or described reference) and `nullable: true` (OpenAPI 3.0) as
/// X plus a nullable flag; the outer keys (a description) win over X's.
function unwrap(s: Obj): { s: Obj; nullable: boolean } {
  const nullable = s.nullable === true || (Array.isArray(s.type) && s.type.includes('null'));
  for (const key of ['oneOf', 'anyOf', 'allOf']) {
    const alts = arr(s[key]);
    const isNull = (a: unknown) => isObj(a) && a.type === 'null' && Object.keys(a).length === 1;
    const rest = alts.filter((a) => !isNull(a));
    if (rest.length === 1 && isObj(rest[0]) && (alts.length === 1 || key !== 'allOf')) {
      const outer = { ...s };
      delete outer[key];
      const inner = unwrap(rest[0]);
      return { s: { ...inner.s, ...outer }, nullable: nullable || inner.nullable || alts.length > 1 };
    }
  }
  return { s, nullable };
}

/// The types a schema names, `null` apart (shown as "nullable") unless it
/// is the only one.
function typesOf(s: Obj): string[] {
  const all = (Array.isArray(s.type) ? s.type.map(str) : [str(s.type)]).filter(Boolean);
  const types = all.filter((t) => t !== 'null');
  return types.length ? types : all;
}

function typeLabel(s: Obj): string {
  const format = str(s.format);
  let types = typesOf(s);
  if (types.length === 0 && s.properties) types = ['object'];
  if (types.length === 0 && s.items) types = ['array'];
  return types
    .map((t) => (t === 'string' && format === 'binary' ? 'binary' : t === 'string' && format === 'byte' ? 'base64' : format ? `${t} (${format})` : t))
    .join(' or ');
}

const num = (v: unknown) => typeof v === 'number';
const CONSTRAINTS: [string, (v: unknown) => string | null][] = [
  ['minLength', (v) => (num(v) ? `min length ${v}` : null)],
  ['maxLength', (v) => (num(v) ? `max length ${v}` : null)],
  ['minimum', (v) => (num(v) ? `≥ ${v}` : null)],
  ['exclusiveMinimum', (v) => (num(v) ? `> ${v}` : null)],
  ['maximum', (v) => (num(v) ? `≤ ${v}` : null)],
  ['exclusiveMaximum', (v) => (num(v) ? `< ${v}` : null)],
  ['multipleOf', (v) => (num(v) ? `multiple of ${v}` : null)],
  ['minItems', (v) => (num(v) ? `min ${v} items` : null)],
  ['maxItems', (v) => (num(v) ? `max ${v} items` : null)],
  ['uniqueItems', (v) => (v === true ? 'unique items' : null)],
  ['minProperties', (v) => (num(v) ? `min ${v} fields` : null)],
  ['maxProperties', (v) => (num(v) ? `max ${v} fields` : null)],
  ['contentMediaType', (v) => (typeof v === 'string' ? v : null)],
  ['readOnly', (v) => (v === true ? 'read-only' : null)],
  ['writeOnly', (v) => (v === true ? 'write-only' : null)],
  ['deprecated', (v) => (v === true ? 'deprecated' : null)],
];

/// An items schema short enough to say in the head: `array of Channel`.
const isPlain = (s: unknown) =>
  isObj(s) && typeof (s.$ref ?? s.type) === 'string' && Object.keys(s).every((k) => ['type', 'format', '$ref'].includes(k));

/// A schema as a head (what it is, on one line) and a body (description,
/// fields, items, alternatives), so a field's name can share the head's line.
function describe(raw: unknown, depth: number): { head: ComponentChildren; body: ComponentChildren } {
  if (raw === true || (isObj(raw) && Object.keys(raw).length === 0)) return { head: <span class="s-type">any value</span>, body: null };
  if (raw === false) return { head: <span class="s-type">nothing</span>, body: null };
  if (!isObj(raw)) return { head: null, body: null };
  if (depth > MAX_DEPTH) return { head: <span class="muted">…</span>, body: null };
  const { s, nullable } = unwrap(raw);
  const head: ComponentChildren[] = [];
  const body: ComponentChildren[] = [];
  if (typeof s.$ref === 'string') head.push(<RefLink to={s.$ref} />);
  if (str(s.title)) head.push(<span class="s-title">{str(s.title)}</span>);
  const items = s.items;
  if (isObj(items) && isPlain(items)) {
    head.push(<span class="s-type">array of </span>, items.$ref ? <RefLink to={str(items.$ref)} /> : <span class="s-type">{typeLabel(items)}</span>);
  } else {
    const label = typeLabel(s);
    if (label) head.push(<span class="s-type">{label}</span>);
  }
  if (nullable && typesOf(s).join() !== 'null') head.push(<span class="chip">nullable</span>);
  if ('const' in s) head.push(<span class="chip">always <code>{lit(s.const)}</code></span>);
  const values = arr(s.enum);
  if (values.length) {
    head.push(
      <span class="chip">
        one of{' '}
        {values.map((v, i) => (
          <Fragment key={i}>{i > 0 && ', '}<code>{lit(v)}</code></Fragment>
        ))}
      </span>,
    );
  }
  for (const [key, say] of CONSTRAINTS) {
    const text = key in s ? say(s[key]) : null;
    if (text) head.push(<span class="chip">{text}</span>);
  }
  if (typeof s.pattern === 'string') head.push(<span class="chip">pattern <code>{s.pattern}</code></span>);
  if ('default' in s) head.push(<span class="chip">default <code>{lit(s.default)}</code></span>);

  body.push(<Text text={s.description} />);
  const required = arr(s.required).map(str);
  const props = Object.entries(obj(s.properties));
  if (props.length) {
    body.push(
      <ul class="props">
        {props.map(([name, p]) => {
          const d = describe(p, depth + 1);
          return (
            <li key={name}>
              <div class="s-head">
                <code class="prop">{name}</code>
                {required.includes(name) && <span class="req">required</span>}
                {d.head}
              </div>
              {d.body}
            </li>
          );
        })}
      </ul>,
    );
  }
  if (s.additionalProperties === false && props.length) body.push(<p class="desc muted">No other fields.</p>);
  else if (isObj(s.additionalProperties)) body.push(<Sub label="Any other field:" s={s.additionalProperties} depth={depth} />);
  if (items !== undefined && !isPlain(items)) body.push(<Sub label="Each item:" s={items} depth={depth} />);
  for (const [key, label] of [['oneOf', 'One of:'], ['anyOf', 'Any of:'], ['allOf', 'All of:']] as const) {
    const alts = arr(s[key]);
    if (!alts.length) continue;
    body.push(
      <div class="s-sub">
        <span class="muted">{label}</span>
        <ol class="variants">
          {alts.map((a, i) => (
            <li key={i}><SchemaView s={a} depth={depth + 1} /></li>
          ))}
        </ol>
      </div>,
    );
  }
  if (s.not !== undefined) body.push(<Sub label="Not:" s={s.not} depth={depth} />);
  if ('example' in s) body.push(<Example value={s.example} />);
  return { head, body };
}

function Sub({ label, s, depth }: { label: string; s: unknown; depth: number }) {
  return (
    <div class="s-sub">
      <span class="muted">{label}</span>
      <SchemaView s={s} depth={depth + 1} />
    </div>
  );
}

function SchemaView({ s, depth = 0 }: { s: unknown; depth?: number }) {
  const d = describe(s, depth);
  return (
    <div class="schema">
      <div class="s-head">{d.head}</div>
      {d.body}
    </div>
  );
}

function Example({ value }: { value: unknown }) {
  return (
    <details class="example">
      <summary>Example</summary>
      <pre>{typeof value === 'string' ? value : JSON.stringify(value, null, 2)}</pre>
    </details>
  );
}

/// A body in some content type. A plain string schema under a non-JSON
/// type (SDP, a playlist, a JPEG) says what the bytes are instead.
function Content({ content }: { content: unknown }) {
  const entries = Object.entries(obj(content));
  if (!entries.length) return null;
  return (
    <>
      {entries.map(([mime, rawMedia]) => {
        const media = obj(rawMedia);
        const schema = obj(media.schema);
        const json = /[/+]json\b/.test(mime);
        const plain = !json && schema.type === 'string' && Object.keys(schema).every((k) => ['type', 'format', 'description'].includes(k));
        const d = plain || media.schema === undefined ? null : describe(media.schema, 0);
        return (
          <div class="media" key={mime}>
            <div class="s-head">
              <span class="mime">{mime}</span>
              {plain && <span class="s-type">{schema.format === 'binary' ? 'binary data' : 'text'}</span>}
              {d?.head}
            </div>
            {plain ? <Text text={schema.description} /> : d?.body}
            {'example' in media && <Example value={media.example} />}
          </div>
        );
      })}
    </>
  );
}

/// "sign-in required" (or optional, when one alternative is `{}`), with the
/// schemes that satisfy it.
function Security({ security }: { security: unknown[] }) {
  const model = useContext(ModelContext);
  const reqs = security.map(obj);
  if (!reqs.length) return null;
  const optional = reqs.some((r) => Object.keys(r).length === 0);
  const names = reqs.filter((r) => Object.keys(r).length > 0).map((r) => Object.keys(r));
  return (
    <p class="security">
      <span class={`badge ${optional ? '' : 'signin'}`}>{optional ? 'sign-in optional' : 'sign-in required'}</span>{' '}
      {names.length > 0 && (
        <span class="muted">
          {names.map((group, i) => (
            <Fragment key={i}>
              {i > 0 && ' or '}
              {group.map((n, j) => {
                const id = model?.schemes.get(n);
                return <Fragment key={n}>{j > 0 && ' + '}{id ? <a href={`#${id}`}>{n}</a> : n}</Fragment>;
              })}
            </Fragment>
          ))}
        </span>
      )}
    </p>
  );
}

function Params({ params }: { params: Obj[] }) {
  if (!params.length) return null;
  return (
    <>
      <h4>Parameters</h4>
      <div class="table-wrap">
        <table class="params">
          <thead>
            <tr><th>Name</th><th>In</th><th>Value</th></tr>
          </thead>
          <tbody>
            {params.map((p) => (
              <tr key={`${str(p.in)}:${str(p.name)}`}>
                <td>
                  <code class="prop">{str(p.name)}</code>
                  {p.required === true && <span class="req">required</span>}
                  {p.deprecated === true && <span class="chip">deprecated</span>}
                </td>
                <td class="in">{str(p.in)}</td>
                <td>
                  {p.schema !== undefined ? <SchemaView s={p.schema} /> : <Content content={p.content} />}
                  <Text text={p.description} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function Responses({ responses }: { responses: unknown }) {
  const model = useContext(ModelContext);
  const entries = Object.entries(obj(responses));
  if (!entries.length) return null;
  return (
    <>
      <h4>Responses</h4>
      <ul class="responses">
        {entries.map(([status, raw]) => {
          const r = deref(model?.doc ?? {}, raw);
          const headers = Object.entries(obj(r.headers));
          return (
            <li key={status} data-status={status}>
              <div class="resp-head">
                <span class={`status s${status[0]}`}>{status}</span> {codeSpans(str(r.description))}
              </div>
              {headers.length > 0 && (
                <div class="table-wrap">
                  <table class="params">
                    <thead>
                      <tr><th>Header</th><th>Value</th></tr>
                    </thead>
                    <tbody>
                      {headers.map(([name, rawHeader]) => {
                        const h = deref(model?.doc ?? {}, rawHeader);
                        return (
                          <tr key={name}>
                            <td><code class="prop">{name}</code></td>
                            <td>
                              {h.schema !== undefined && <SchemaView s={h.schema} />}
                              <Text text={h.description} />
                            </td>
                          </tr>
                        );
                      })}
                    </tbody>
                  </table>
                </div>
              )}
              <Content content={r.content} />
            </li>
          );
        })}
      </ul>
    </>
  );
}

function OperationView({ o, globalSecurity }: { o: Operation; globalSecurity: unknown }) {
  const model = useContext(ModelContext);
  const body = o.op.requestBody === undefined ? null : deref(model?.doc ?? {}, o.op.requestBody);
  const security = arr(o.op.security ?? globalSecurity);
  return (
    <section class="op" id={o.id} data-method={o.method} data-path={o.path} aria-labelledby={`${o.id}-h`}>
      <h3 class="op-head" id={`${o.id}-h`}>
        <span class={`method ${o.method}`}>{o.method.toUpperCase()}</span> <code class="op-path">{o.path}</code>
        {o.op.deprecated === true && <span class="chip">deprecated</span>}
      </h3>
      {str(o.op.summary) && <p class="op-summary">{str(o.op.summary)}</p>}
      <Security security={security} />
      <Text text={o.op.description} class="desc op-desc" />
      <Params params={o.params} />
      {body && (
        <>
          <h4>Request body {body.required === true ? <span class="req">required</span> : <span class="muted">(optional)</span>}</h4>
          <Text text={body.description} />
          <Content content={body.content} />
        </>
      )}
      <Responses responses={o.op.responses} />
    </section>
  );
}

function Schemes() {
  const model = useContext(ModelContext);
  const schemes = Object.entries(obj(obj(model?.doc.components).securitySchemes));
  if (!model || !schemes.length) return null;
  return (
    <section aria-labelledby="auth-h">
      <h2 id="auth-h">Authentication</h2>
      <dl class="kv">
        {schemes.map(([name, raw]) => {
          const s = deref(model.doc, raw);
          const how = [str(s.type), str(s.scheme), s.in ? `in ${str(s.in)}` : '', str(s.name), str(s.bearerFormat)].filter(Boolean).join(' · ');
          return (
            <Fragment key={name}>
              <dt id={model.schemes.get(name)} class="mono">{name}</dt>
              <dd>
                <span>{how}</span>
                <Text text={s.description} />
              </dd>
            </Fragment>
          );
        })}
      </dl>
    </section>
  );
}

export function ApiDocs() {
  const [doc, setDoc] = useState<Obj | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    get<unknown>('/api/openapi.json').then(
      (d) => (isObj(d) ? setDoc(d) : setError('The document is not a JSON object.')),
      (e) => setError(errorText(e)),
    );
  }, []);
  const model = useMemo(() => (doc ? buildModel(doc) : null), [doc]);
  // A link to a section (/api/docs#op-get-api-me) can only land once the
  // sections exist.
  useEffect(() => {
    if (!model || !location.hash) return;
    let id = location.hash.slice(1);
    try {
      id = decodeURIComponent(id);
    } catch {
      // Not percent-encoded: the id as written.
    }
    document.getElementById(id)?.scrollIntoView();
  }, [model]);

  if (error) return <p class="error" role="alert">Could not load the API description: {error}</p>;
  if (!model) return <p class="muted">Loading…</p>;
  const info = obj(model.doc.info);
  const schemas = Object.entries(obj(obj(model.doc.components).schemas));
  return (
    <ModelContext.Provider value={model}>
      <article class="api-docs" data-ready="true">
        <h1>
          {str(info.title) || 'API'} {str(info.version) && <span class="badge">{str(info.version)}</span>}
        </h1>
        <Text text={info.description} class="desc intro" />
        <p class="muted">
          <a href="/api/openapi.json" download="openapi.json">Download openapi.json</a>
          {str(model.doc.openapi) && ` · OpenAPI ${str(model.doc.openapi)}`}
        </p>
        <nav class="toc" aria-labelledby="toc-h">
          <h2 id="toc-h">Contents</h2>
          <ul>
            {model.groups.map((g) => (
              <li key={g.id}>
                <a href={`#${g.id}`}>{g.name}</a>
                <ul>
                  {g.ops.map((o) => (
                    <li key={o.id}>
                      <a href={`#${o.id}`}>
                        <span class={`method ${o.method}`}>{o.method.toUpperCase()}</span> <span class="op-path">{o.path}</span>
                      </a>
                    </li>
                  ))}
                </ul>
              </li>
            ))}
            {model.schemes.size > 0 && <li><a href="#auth-h">Authentication</a></li>}
            {schemas.length > 0 && <li><a href="#schemas">Schemas</a></li>}
          </ul>
        </nav>
        {model.groups.map((g) => (
          <section key={g.id} aria-labelledby={g.id}>
            <h2 id={g.id} class="group">{g.name}</h2>
            <Text text={g.description} />
            {g.ops.map((o) => (
              <OperationView key={o.id} o={o} globalSecurity={model.doc.security} />
            ))}
          </section>
        ))}
        <Schemes />
        {schemas.length > 0 && (
          <section aria-labelledby="schemas">
            <h2 id="schemas">Schemas</h2>
            {schemas.map(([name, s]) => (
              <section key={name} class="schema-def" id={model.schemas.get(name)} data-schema={name}>
                <h3 class="mono">{name}</h3>
                <SchemaView s={s} />
              </section>
            ))}
          </section>
        )}
      </article>
    </ModelContext.Provider>
  );
}
