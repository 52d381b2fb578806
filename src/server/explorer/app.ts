/**
 * The Labor Space explorer: a page over the HTTP API. Search (a reference or any text) lists the
 * nearest entities of each type; a click on one shows it and searches from it; the map (Vega-Lite
 * through vega-embed, bundled, so the page works offline) shows the space; the axis and shock tools
 * rank entities along poles or by exposure.
 */
import embed from 'vega-embed';

interface Hit {
  ref: string;
  title: string;
  score: number;
}

const TYPES = ['occupation', 'industry', 'skill', 'firm'] as const;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

async function api<T>(path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, body === undefined ? undefined : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok) throw new Error(data.message ?? `${response.status}`);
  return data as T;
}

function status(message: string, error = false): void {
  const el = $('status');
  el.textContent = message;
  el.className = error ? 'error' : '';
}

/** A list of hits whose entries search from themselves when clicked. */
function hitList(hits: Hit[], score = (h: Hit) => h.score.toFixed(3)): HTMLOListElement {
  const ol = document.createElement('ol');
  for (const h of hits) {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = h.title || h.ref;
    button.title = h.ref;
    button.dataset.ref = h.ref;
    button.addEventListener('click', () => void select(h.ref));
    const s = document.createElement('span');
    s.className = 'score';
    s.textContent = score(h);
    li.append(button, s);
    ol.append(li);
  }
  return ol;
}

function columns(target: HTMLElement, groups: [string, HTMLElement][]): void {
  target.replaceChildren(
    ...groups.map(([title, body]) => {
      const div = document.createElement('div');
      div.dataset.type = title;
      const h3 = document.createElement('h3');
      h3.textContent = title;
      div.append(h3, body);
      return div;
    }),
  );
}

async function near(query: string): Promise<void> {
  status(`searching ${query} ...`);
  try {
    const k = Number(($('k') as HTMLInputElement).value) || 8;
    const r = await api<{ results: Record<string, Hit[]>; ref?: string }>(`/v1/near?q=${encodeURIComponent(query)}&k=${k}`);
    columns($('results'), Object.entries(r.results).map(([type, hits]) => [type, hitList(hits)]));
    status(r.ref ? `nearest to ${r.ref}` : `nearest to "${query}"`);
  } catch (e) {
    status((e as Error).message, true);
  }
}

/** Shows an entity and searches from it. */
async function select(ref: string): Promise<void> {
  ($('search') as HTMLInputElement).value = ref;
  try {
    const view = await api<{ entity: { ref: string; title: string; type: string; text: string }; relations: { kind: string; direction: string; total: number }[] }>(`/v1/entities/${encodeURIComponent(ref)}`);
    const detail = $('detail');
    detail.hidden = false;
    const h2 = document.createElement('h2');
    h2.textContent = view.entity.title;
    const meta = document.createElement('p');
    meta.className = 'hint';
    meta.textContent = `${view.entity.ref} (${view.entity.type})`;
    const text = document.createElement('p');
    text.textContent = view.entity.text.length > 600 ? `${view.entity.text.slice(0, 600)}…` : view.entity.text;
    const relations = document.createElement('p');
    relations.className = 'hint';
    relations.textContent = view.relations.map((r) => `${r.direction === 'out' ? '→' : '←'} ${r.kind} ${r.total}`).join(' · ');
    detail.replaceChildren(h2, meta, text, relations);
  } catch (e) {
    status((e as Error).message, true);
  }
  await near(ref);
}

async function drawMap(): Promise<void> {
  try {
    const map = await api<{ points: { ref: string; type: string; title: string; x: number; y: number }[]; explained?: [number, number]; axis?: { from: { x: number; y: number }; to: { x: number; y: number } } }>('/v1/map?max=6000');
    const layers: unknown[] = [
      {
        data: { values: map.points },
        mark: { type: 'circle', size: 14, opacity: 0.5 },
        params: [{ name: 'zoom', select: 'interval', bind: 'scales' }],
        encoding: {
          x: { field: 'x', type: 'quantitative', title: 'PC1' },
          y: { field: 'y', type: 'quantitative', title: 'PC2' },
          color: { field: 'type', type: 'nominal' },
          tooltip: [{ field: 'title' }, { field: 'type' }, { field: 'ref' }],
        },
      },
    ];
    if (map.axis) {
      const { from, to } = map.axis;
      layers.push({ data: { values: [{ x: from.x, y: from.y, x2: to.x, y2: to.y }] }, mark: { type: 'rule', strokeDash: [6, 3], strokeWidth: 2, color: 'black' }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, x2: { field: 'x2' }, y2: { field: 'y2' } } });
    }
    await embed('#map', { width: 'container', height: 460, layer: layers } as never, { actions: false, renderer: 'canvas' });
  } catch (e) {
    $('map').textContent = `map unavailable: ${(e as Error).message}`;
  }
}

function splitPoles(list: string): string[] {
  return (list.match(/"[^"]*"|'[^']*'|[^,]+/g) ?? []).map((p) => p.trim()).filter(Boolean);
}

async function runAxis(): Promise<void> {
  const name = ($('axis-name') as HTMLSelectElement).value;
  const type = ($('axis-type') as HTMLSelectElement).value;
  const body = name ? { name } : { from: splitPoles(($('axis-from') as HTMLInputElement).value), to: splitPoles(($('axis-to') as HTMLInputElement).value) };
  status('ranking along the axis ...');
  try {
    const r = await api<{ results: Record<string, (Hit & { low?: number; high?: number })[]>; fromEnd: Record<string, Hit[]> }>('/v1/axis', { ...body, types: [type], top: 10, bootstrap: 100 });
    const interval = (h: Hit & { low?: number; high?: number }) => `${h.score.toFixed(3)}${h.low !== undefined ? ` [${h.low.toFixed(2)}, ${h.high!.toFixed(2)}]` : ''}`;
    columns($('axis-results'), [
      [`${type}: nearest the "to" end`, hitList(r.results[type], interval)],
      [`${type}: nearest the "from" end`, hitList(r.fromEnd[type], interval)],
    ]);
    status('axis ranked');
  } catch (e) {
    status((e as Error).message, true);
  }
}

async function runShock(): Promise<void> {
  const type = ($('shock-type') as HTMLSelectElement).value;
  status('computing exposure ...');
  try {
    const r = await api<{ results: Record<string, { ref: string; title: string; direct: number; rippled?: number }[]> }>('/v1/shock', { direction: ($('shock-direction') as HTMLInputElement).value, types: [type], top: 15 });
    const table = document.createElement('table');
    table.innerHTML = '<thead><tr><th>rippled</th><th>direct</th><th>entity</th></tr></thead>';
    const body = document.createElement('tbody');
    for (const h of r.results[type]) {
      const tr = document.createElement('tr');
      for (const v of [h.rippled === undefined ? '' : h.rippled.toFixed(3), h.direct.toFixed(3), h.title]) {
        const td = document.createElement('td');
        td.textContent = v;
        tr.append(td);
      }
      body.append(tr);
    }
    table.append(body);
    $('shock-results').replaceChildren(table);
    status('exposure computed');
  } catch (e) {
    status((e as Error).message, true);
  }
}

function init(): void {
  for (const id of ['axis-type', 'shock-type']) for (const t of TYPES) $(id).append(new Option(t, t));
  $('axis-name').append(new Option('manufacturing-healthcare', 'manufacturing-healthcare', true, true));
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void near(($('search') as HTMLInputElement).value);
  });
  $('axis-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void runAxis();
  });
  $('shock-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void runShock();
  });
  void drawMap();
}

init();
