/**
 * The web page at '/': pick a bank, drop an image, see the verdict, the heatmap and the regions.
 * Three static strings served as '/', '/ui.js' and '/ui.css' (the CSP allows scripts and styles
 * from the service itself only). The page calls the API like any client; when the service needs
 * a token (any route answers 401), the page shows a token form and keeps the token in
 * sessionStorage; a refused token is forgotten and the form asks again with the reason.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>musc inspection</title>
<link rel="stylesheet" href="/ui.css">
<script src="/ui.js" defer></script>
</head>
<body data-state="starting">
<header><h1>musc inspection</h1><span id="status" role="status"></span></header>
<main>
<section id="controls">
  <label>Bank <select id="bank"></select></label>
  <button id="load" type="button">Load</button>
</section>
<form id="token-row" hidden>
  <label>This service needs its access token: <input id="token" type="password" autocomplete="off" required></label>
  <button id="token-use" type="submit">Use token</button>
</form>
<section id="drop" tabindex="0">
  <p>Drop an image here, or <label class="pick">choose a file<input id="file" type="file" accept="image/*"></label></p>
</section>
<section id="result" hidden>
  <h2><span id="verdict"></span> <span id="image-name"></span></h2>
  <p>score <b id="score"></b> · normalised <b id="normalized"></b>
    (0.5 = threshold <span id="threshold"></span>) · <span id="time"></span></p>
  <div id="pictures"><img id="heatmap" alt="heatmap"><img id="composite" alt="image, heatmap overlay and mask"></div>
  <table id="regions">
    <thead><tr><th>#</th><th>box (x, y, w, h)</th><th>area</th><th>peak</th><th>mean</th></tr></thead>
    <tbody></tbody>
  </table>
  <p id="no-regions" hidden>no defect regions</p>
</section>
<p id="error" role="alert" hidden></p>
</main>
</body>
</html>
`;

export const PAGE_CSS = `
body { font: 15px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #f6f6f4; }
header { display: flex; align-items: baseline; gap: 1em; padding: 0.6em 1.2em; background: #233; color: #fff; }
header h1 { font-size: 1.2em; margin: 0; }
main { padding: 1em 1.2em; max-width: 1100px; }
#controls, #token-row { display: flex; gap: 1em; align-items: center; margin-bottom: 1em; }
#token-row[hidden] { display: none; }
#drop { border: 2px dashed #889; border-radius: 8px; padding: 2.5em; text-align: center; background: #fff; }
#drop.over { border-color: #26a; background: #eef4ff; }
.pick { color: #26a; text-decoration: underline; cursor: pointer; }
.pick input { display: none; }
#verdict { padding: 0.1em 0.5em; border-radius: 4px; color: #fff; }
#verdict.OK { background: #2a7d3c; }
#verdict.NG { background: #b3261e; }
#pictures img { height: 240px; width: auto; max-width: 100%; margin-right: 1em; border: 1px solid #ccc; }
#regions { border-collapse: collapse; margin-top: 1em; }
#regions td, #regions th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
#error { color: #b3261e; font-weight: bold; }
`;

export const PAGE_SCRIPT = `
'use strict';
const $ = (id) => document.getElementById(id);
const state = (s) => { document.body.dataset.state = s; };
function token() { return sessionStorage.getItem('musc-token') || ''; }
async function api(path, init) {
  init = init || {};
  const headers = Object.assign({}, init.headers || {});
  if (token()) headers.Authorization = 'Bearer ' + token();
  const r = await fetch(path, Object.assign({}, init, { headers }));
  if (r.status === 401) return askToken();
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || ('HTTP ' + r.status));
  return body;
}
// 401: show the token form; a token that was sent is forgotten (it was refused)
function askToken() {
  const sent = token() !== '';
  sessionStorage.removeItem('musc-token');
  $('token-row').hidden = false;
  $('token').value = '';
  $('token').focus();
  $('bank').replaceChildren();
  throw new Error(sent ? 'the token was refused (401): check it and enter it again' : 'this service needs a token: enter it above');
}
function showError(e) { $('error').textContent = e.message || String(e); $('error').hidden = false; state('error'); }
function ready() { $('error').hidden = true; $('token-row').hidden = true; state('ready'); }
function selected() { return $('bank').value; }
async function refreshBanks(keep) {
  const { banks } = await api('/v1/banks');
  const sel = $('bank');
  sel.replaceChildren(...banks.map((b) => {
    const o = document.createElement('option');
    o.value = b.name;
    o.textContent = b.name + (b.loaded ? ' (v' + b.version + ')' : ' (not loaded)');
    o.dataset.loaded = b.loaded ? '1' : '0';
    return o;
  }));
  const firstLoaded = banks.find((b) => b.loaded);
  if (keep && banks.some((b) => b.name === keep)) sel.value = keep;
  else if (firstLoaded) sel.value = firstLoaded.name;
  const loaded = banks.filter((b) => b.loaded).length;
  $('status').textContent = banks.length ? loaded + ' of ' + banks.length + ' banks loaded' : 'no banks in the banks folder';
}
async function loadBank() {
  const name = selected();
  if (!name) return;
  $('status').textContent = 'loading ' + name + '...';
  await api('/v1/banks/' + encodeURIComponent(name) + '/load', { method: 'POST' });
  await refreshBanks(name);
}
function cell(text) { const td = document.createElement('td'); td.textContent = text; return td; }
const fmt = (v) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : v === undefined ? '' : String(v));
function showPrediction(p) {
  $('verdict').textContent = p.verdict;
  $('verdict').className = p.verdict;
  $('image-name').textContent = p.name;
  $('score').textContent = fmt(p.score);
  $('normalized').textContent = fmt(p.normalized);
  $('threshold').textContent = fmt(p.threshold);
  const total = Object.values(p.timings || {}).reduce((a, b) => a + b, 0);
  $('time').textContent = (p.timings && p.timings.total !== undefined ? p.timings.total : total).toFixed(0) + ' ms';
  $('heatmap').src = 'data:image/png;base64,' + p.images.heatmap;
  $('composite').src = 'data:image/png;base64,' + p.images.composite;
  const rows = p.regions.map((r, i) => {
    const tr = document.createElement('tr');
    const box = [r.x, r.y, r.width, r.height].map(fmt).join(', ');
    tr.append(cell(String(i + 1)), cell(box), cell(fmt(r.area)), cell(fmt(r.peak)), cell(fmt(r.mean)));
    return tr;
  });
  $('regions').tBodies[0].replaceChildren(...rows);
  $('regions').hidden = rows.length === 0;
  $('no-regions').hidden = rows.length !== 0;
  $('result').hidden = false;
}
async function predictFile(file) {
  const name = selected();
  if (!name) throw new Error('choose a bank first');
  if ($('bank').selectedOptions[0].dataset.loaded !== '1') await loadBank();
  state('busy');
  $('error').hidden = true;
  const q = '?include=heatmap,composite&name=' + encodeURIComponent(file.name);
  const body = await api('/v1/banks/' + encodeURIComponent(name) + '/predict' + q, {
    method: 'POST', headers: { 'Content-Type': file.type || 'application/octet-stream' }, body: file,
  });
  showPrediction(body.prediction);
  state('done');
}
function onFiles(files) { if (files && files[0]) predictFile(files[0]).catch(showError); }
function init() {
  $('token-row').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem('musc-token', $('token').value.trim());
    state('busy');
    refreshBanks().then(ready, showError);
  });
  $('load').addEventListener('click', () => loadBank().catch(showError));
  $('file').addEventListener('change', () => onFiles($('file').files));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); onFiles(e.dataTransfer.files); });
  refreshBanks().then(ready, showError);
}
init();
`;
