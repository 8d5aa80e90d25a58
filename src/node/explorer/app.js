// The klero explorer: plain JavaScript over the node's own JSON API (the
// page and this script are served by the node; nothing else is loaded).
// Routes live in the URL fragment: #/, #/block/ID, #/tx/ID,
// #/account/ADDRESS[/BEFORE]. The current view is fetched again every
// POLL_MS and the DOM is replaced only when its content changed.
'use strict';

const POLL_MS = 2000;
const view = document.getElementById('view');
let shown = '';
let busy = false;

function esc(value) {
  return String(value).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

async function api(path) {
  const response = await fetch(path, { headers: { accept: 'application/json' } });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

const short = hex => esc(hex.slice(0, 12)) + '…';
const shortAddr = a => esc(a.slice(0, 12) + '…' + a.slice(-6));
const pct = x => (100 * x).toFixed(1) + '%';
const when = ms => esc(new Date(ms).toLocaleTimeString());
const blockLink = (id, height) =>
  `<a class="block-link hex" data-id="${esc(id)}"${height === undefined ? '' : ` data-height="${esc(height)}"`} href="#/block/${esc(id)}" title="${esc(id)}">${short(id)}</a>`;
const txLink = id => `<a class="tx-link hex" href="#/tx/${esc(id)}" title="${esc(id)}">${short(id)}</a>`;
const accountLink = a => `<a class="account-link hex" href="#/account/${esc(a)}" title="${esc(a)}">${shortAddr(a)}</a>`;
const dl = rows => '<dl>' + rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('') + '</dl>';

function txWhat(tx) {
  switch (tx.kind) {
    case 'transfer': return `transfer ${esc(tx.amount)} to ${accountLink(tx.to)}`;
    case 'stake': return `stake ${esc(tx.amount)}`;
    case 'unstake': return `unstake ${esc(tx.amount)}`;
    case 'evidence': return `evidence against ${accountLink(tx.offender)}`;
    default: return esc(tx.kind);
  }
}

function txRows(txs) {
  if (txs.length === 0) return '<p class="muted">no transactions</p>';
  return '<table><tr><th>tx</th><th>from</th><th>what</th><th>fee</th></tr>' +
    txs.map(tx => `<tr><td>${txLink(tx.id)}</td><td>${accountLink(tx.from)}</td><td>${txWhat(tx)}</td><td>${esc(tx.fee)}</td></tr>`).join('') +
    '</table>';
}

// The fairness chart: per proposer, its share of the window's wins beside
// its share of the lottery's weight, as inline SVG.
function fairnessChart(p) {
  // The proposers not listed one by one come summed, as one row.
  const rows = p.others ? p.proposers.concat([Object.assign({ address: null }, p.others)]) : p.proposers;
  if (rows.length === 0) return '<p class="muted">no proposers yet</p>';
  const barH = 12, gap = 10, left = 150, width = 580, scale = width - left - 100;
  const height = rows.length * (2 * barH + gap) + 10;
  const max = Math.max(0.01, ...rows.map(r => Math.max(r.win_share, r.weight_share || 0)));
  let svg = `<svg id="fairness" role="img" aria-label="win share against weight share" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`;
  rows.forEach((r, i) => {
    const y = 5 + i * (2 * barH + gap);
    const win = scale * r.win_share / max;
    const name = r.address === null ? `${esc(r.count)} others` : shortAddr(r.address);
    svg += `<text x="0" y="${y + barH + 4}">${name}</text>`;
    svg += `<rect class="win-bar" x="${left}" y="${y}" width="${win.toFixed(1)}" height="${barH}" fill="#2563eb"></rect>`;
    svg += `<text x="${(left + win + 4).toFixed(1)}" y="${y + barH - 2}">${pct(r.win_share)} (${esc(r.window_wins)})</text>`;
    if (r.weight_share !== null) {
      const weight = scale * r.weight_share / max;
      svg += `<rect class="weight-bar" x="${left}" y="${y + barH}" width="${weight.toFixed(1)}" height="${barH}" fill="#f59e0b"></rect>`;
      svg += `<text x="${(left + weight + 4).toFixed(1)}" y="${y + 2 * barH - 2}">${pct(r.weight_share)}</text>`;
    }
  });
  return svg + '</svg>';
}

async function home() {
  const [status, list, props, peers, reorgs] = await Promise.all([
    api('/status'), api('/blocks?limit=20'), api('/proposers'), api('/peers'), api('/reorgs'),
  ]);
  document.getElementById('chain').textContent = `${status.chain_id} · ${status.consensus}`;
  const sync = status.sync_state === 'synced'
    ? '<span class="ok">synced</span>'
    : `<span class="syncing">syncing</span> (${esc(peers.height_gap)} behind)`;
  const pos = status.consensus === 'pos';
  const head = `<section id="head"><h2>Head</h2>${dl([
    ['height', `<span id="height">${esc(status.height)}</span>`],
    ['block', blockLink(status.head, status.height)],
    ['time', when(status.head_timestamp_ms)],
    ['epoch', esc(status.epoch)],
    ['sync', sync],
    ['peers', esc(status.peers)],
    ['mempool', esc(status.mempool)],
    pos ? ['slot fill', props.slot_fill === null ? '—' : `${pct(props.slot_fill)} of ${esc(props.window_slots)} slots`]
      : ['hashrate (this node)', esc(Math.round(status.hashrate)) + ' H/s'],
    ['off the best chain', esc(props.orphaned) + ' blocks'],
  ])}</section>`;
  const blocks = `<section id="blocks" class="wide"><h2>Latest blocks</h2><table><tr><th>height</th><th>block</th><th>${pos ? 'slot' : 'nonce'}</th><th>proposer</th><th>txs</th><th>time</th><th></th></tr>` +
    list.blocks.map(b => `<tr${b.canonical ? '' : ' class="orphan"'}><td>${esc(b.height)}</td><td>${blockLink(b.id, b.height)}</td><td>${esc(pos ? b.slot : b.nonce)}</td><td>${accountLink(b.proposer)}</td><td>${esc(b.tx_count)}</td><td>${when(b.timestamp_ms)}</td><td>${b.canonical ? 'canonical' : 'orphaned'}</td></tr>`).join('') +
    '</table></section>';
  const fair = `<section id="fairness-panel"><h2>Win share against weight share</h2><p class="muted">last ${esc(props.window_blocks)} blocks of the best chain` +
    (pos ? '; weight = stake in the epoch\'s draw snapshot' : '; a PoW node cannot see the other miners\' hash rates, so only wins are shown') +
    `</p><p class="legend"><span class="win"></span>wins<span class="weight"></span>weight</p>${fairnessChart(props)}</section>`;
  const peerList = `<section id="peers"><h2>Peers (${esc(peers.peers.length)})</h2>` + (peers.peers.length === 0 ? '<p class="muted">none connected</p>'
    : '<table><tr><th>peer</th><th>reported height</th></tr>' + peers.peers.map(p => `<tr><td class="hex" title="${esc(p.peer_id)}">${esc(p.peer_id.slice(0, 16))}…</td><td>${p.height === null ? '—' : esc(p.height)}</td></tr>`).join('') + '</table>') + '</section>';
  const reorgList = `<section id="reorgs"><h2>Recent reorgs (${esc(reorgs.total)} since start)</h2>` + (reorgs.reorgs.length === 0 ? '<p class="muted">none</p>'
    : '<table><tr><th>time</th><th>depth</th><th>fork at</th><th>old head</th><th>new head</th></tr>' + reorgs.reorgs.map(r => `<tr><td>${when(r.at_ms)}</td><td>${esc(r.depth)}</td><td>${esc(r.fork_height)}</td><td>${blockLink(r.old_head)}</td><td>${blockLink(r.new_head)}</td></tr>`).join('') + '</table>') + '</section>';
  return head + fair + blocks + peerList + reorgList;
}

async function block(id) {
  const b = await api('/blocks/id/' + encodeURIComponent(id));
  const seal = b.consensus === 'pos'
    ? [['slot', esc(b.slot)], ['vrf output', esc(b.vrf_output)]]
    : [['nonce', esc(b.nonce)], ['target', esc(b.target)], ['pow hash', esc(b.pow_hash)]];
  return `<section id="block" class="wide"><h2>Block <span id="block-id" class="hex">${esc(b.id)}</span></h2>${dl([
    ['height', esc(b.height)],
    ['status', b.canonical ? '<span class="ok">canonical</span>' : '<span class="orphan">not on the best chain</span>'],
    ['parent', blockLink(b.parent)],
    ['time', when(b.timestamp_ms)],
    ['proposer', accountLink(b.proposer)],
    ...seal,
    ['state root', esc(b.state_root)],
    ['tx root', esc(b.tx_root)],
  ])}</section><section class="wide"><h2>Transactions (${esc(b.txs.length)})</h2>${txRows(b.txs)}</section>`;
}

async function tx(id) {
  const t = await api('/txs/' + encodeURIComponent(id));
  let rows = [['status', esc(t.status)]];
  if (t.status === 'included') {
    rows = rows.concat([['block', blockLink(t.block, t.height)], ['height', esc(t.height)], ['confirmations', esc(t.confirmations)], ['time', when(t.timestamp_ms)]]);
  }
  if (t.tx) {
    rows = rows.concat([['from', accountLink(t.tx.from)], ['what', txWhat(t.tx)], ['fee', esc(t.tx.fee)], ['nonce', esc(t.tx.nonce)]]);
  }
  return `<section id="tx" class="wide"><h2>Transaction <span class="hex">${esc(t.id)}</span></h2>${dl(rows)}</section>`;
}

async function account(address, before) {
  const query = '?limit=20' + (before ? '&before=' + encodeURIComponent(before) : '');
  const [a, history] = await Promise.all([
    api('/accounts/' + encodeURIComponent(address)).catch(e => ({ missing: e.message })),
    api('/accounts/' + encodeURIComponent(address) + '/txs' + query),
  ]);
  const info = a.missing ? `<p class="muted">${esc(a.missing)}</p>` : dl([
    ['balance', esc(a.balance)], ['bonded', esc(a.bonded)], ['nonce', esc(a.nonce)],
    ['rewards', esc(a.rewards)], ['blocks proposed', esc(a.blocks_proposed)],
    ['unbonding', a.unbonding.map(u => `${esc(u.amount)} (epoch ${esc(u.release_epoch)})`).join(', ') || '—'],
  ]);
  const rows = history.txs.length === 0 ? '<p class="muted">no transactions on the best chain</p>'
    : '<table><tr><th>height</th><th>tx</th><th>from</th><th>what</th><th>time</th></tr>' +
      history.txs.map(e => `<tr><td>${blockLink(e.block, e.height)} ${esc(e.height)}</td><td>${txLink(e.tx.id)}</td><td>${accountLink(e.tx.from)}</td><td>${txWhat(e.tx)}</td><td>${when(e.timestamp_ms)}</td></tr>`).join('') + '</table>';
  const older = history.next_before === null ? '' : `<p><a href="#/account/${esc(address)}/${esc(history.next_before)}">older</a></p>`;
  return `<section id="account" class="wide"><h2>Account <span class="hex">${esc(address)}</span></h2>${info}</section><section class="wide"><h2>History</h2>${rows}${older}</section>`;
}

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  switch (parts[0]) {
    case 'block': return () => block(parts[1]);
    case 'tx': return () => tx(parts[1]);
    case 'account': return () => account(parts[1], parts[2]);
    default: return home;
  }
}

async function refresh() {
  if (busy) return;
  busy = true;
  const hash = location.hash;
  let html;
  try {
    html = await route()();
  } catch (e) {
    html = `<section class="wide"><h2>Not found</h2><p>${esc(e.message)}</p><p><a href="#/">back</a></p></section>`;
  }
  busy = false;
  if (hash !== location.hash) return refresh();
  if (html !== shown) {
    view.innerHTML = html;
    shown = html;
  }
  document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}

document.getElementById('search').addEventListener('submit', async event => {
  event.preventDefault();
  const q = document.getElementById('q').value.trim();
  if (/^\d+$/.test(q)) {
    const b = await api('/blocks/' + q).catch(() => null);
    location.hash = b ? '#/block/' + b.id : '#/block/' + q;
  } else if (/^[0-9a-fA-F]{64}$/.test(q)) {
    const b = await api('/blocks/id/' + q).catch(() => null);
    location.hash = (b ? '#/block/' : '#/tx/') + q.toLowerCase();
  } else {
    location.hash = '#/account/' + q;
  }
});

window.addEventListener('hashchange', () => { shown = ''; refresh(); });
refresh();
setInterval(refresh, POLL_MS);
