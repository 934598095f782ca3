/** The report page's stylesheet (inlined into report.html). */
export const PAGE_CSS = `
:root { --bg: #f6f7f9; --fg: #1c2330; --muted: #667085; --card: #fff; --line: #d8dde6; --good: #1f9d55; --bad: #d64545; --unk: #8a94a6; --accent: #2f6fde; --f1: #2f6fde; --free: #9a6bd1; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg); }
header { padding: 14px 20px; background: #1c2330; color: #fff; display: flex; flex-wrap: wrap; gap: 12px; align-items: baseline; }
header h1 { margin: 0; font-size: 19px; }
header .sub { color: #b9c2d3; }
main { padding: 14px 20px 40px; max-width: 1600px; margin: 0 auto; }
h2 { margin: 6px 0 12px; font-size: 18px; }
h3 { margin: 0 0 8px; font-size: 14px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .03em; }
.tabs { display: flex; flex-wrap: wrap; gap: 6px; margin-bottom: 12px; }
.tabs button { border: 1px solid var(--line); background: var(--card); padding: 5px 12px; border-radius: 14px; cursor: pointer; font: inherit; }
.tabs button.active { background: var(--accent); border-color: var(--accent); color: #fff; }
.panels { display: grid; grid-template-columns: repeat(auto-fit, minmax(330px, 1fr)); gap: 12px; margin-bottom: 12px; }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
table { border-collapse: collapse; }
td, th { padding: 2px 8px; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv td:first-child { color: var(--muted); }
.overview { margin-bottom: 12px; overflow-x: auto; }
.overview tr.clickable { cursor: pointer; }
.overview tr.clickable:hover { background: #eef3fd; }
.overview tr.current { font-weight: 600; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font-size: 10px; fill: var(--muted); }
.legend { display: flex; gap: 12px; flex-wrap: wrap; font-size: 12px; color: var(--muted); margin-top: 4px; }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
.threshold { position: sticky; top: 0; z-index: 5; }
.thr-row { display: flex; flex-wrap: wrap; gap: 10px 18px; align-items: center; }
.slider-wrap { position: relative; flex: 1 1 320px; min-width: 240px; padding-top: 10px; }
.slider-wrap input[type=range] { width: 100%; }
.mark { position: absolute; top: 0; width: 0; height: 0; border-left: 6px solid transparent; border-right: 6px solid transparent; transform: translateX(-6px); }
.mark.f1 { border-top: 9px solid var(--f1); }
.mark.free { border-top: 9px solid var(--free); }
#thr-value { width: 9em; font: inherit; }
.thr-row button { font: inherit; border: 1px solid var(--line); background: #fff; border-radius: 6px; padding: 3px 8px; cursor: pointer; }
.counts { display: flex; gap: 16px; flex-wrap: wrap; }
.counts b { font-size: 18px; font-variant-numeric: tabular-nums; }
.pill { display: inline-block; padding: 0 7px; border-radius: 9px; color: #fff; font-size: 12px; font-weight: 600; }
.pill.ng { background: var(--bad); }
.pill.ok { background: var(--good); }
.cm td { border: 1px solid var(--line); text-align: center; min-width: 56px; }
.cm th { font-weight: normal; color: var(--muted); font-size: 12px; }
.note { color: var(--muted); font-size: 12px; }
.warn { color: #9a5b00; }
.controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin: 14px 0 10px; }
.controls select { font: inherit; padding: 2px 4px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 10px; }
.card { background: var(--card); border: 2px solid var(--line); border-radius: 8px; padding: 6px; cursor: pointer; }
.card:hover { border-color: var(--accent); }
.card.wrong { border-color: #f0a0a0; background: #fff7f7; }
.card[hidden] { display: none; }
.thumbs { display: grid; grid-template-columns: 1fr 1fr; gap: 4px; }
.tw { position: relative; aspect-ratio: 1 / 1; background: #e9ecf1; border-radius: 4px; overflow: hidden; }
.tw img { position: absolute; inset: 0; width: 100%; height: 100%; object-fit: fill; }
.tw .missing { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center; color: var(--muted); font-size: 11px; }
body.no-outline img.outline { display: none; }
.meta { display: flex; gap: 6px; align-items: center; margin-top: 5px; flex-wrap: wrap; }
.meta .rank { color: var(--muted); font-size: 12px; }
.meta .score { font-weight: 600; font-variant-numeric: tabular-nums; }
.lab { font-size: 12px; padding: 0 6px; border-radius: 9px; border: 1px solid currentColor; }
.lab.l1 { color: var(--bad); }
.lab.l0 { color: var(--good); }
.lab.lu { color: var(--unk); }
.meta .pred { margin-left: auto; }
.path { font-size: 11px; color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; direction: rtl; text-align: left; }
dialog { border: none; border-radius: 10px; padding: 14px; max-width: 96vw; width: 1400px; }
dialog::backdrop { background: rgba(10, 14, 22, .75); }
.viewer-head { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin-bottom: 10px; }
.viewer-head .title { font-weight: 600; word-break: break-all; }
.viewer-head .grow { flex: 1; }
.viewer-head button { font: inherit; border: 1px solid var(--line); background: #fff; border-radius: 6px; padding: 3px 10px; cursor: pointer; }
.viewer-imgs { display: grid; grid-template-columns: repeat(3, 1fr); gap: 10px; }
.viewer-imgs figure { margin: 0; }
.viewer-imgs figcaption { color: var(--muted); font-size: 12px; margin-top: 3px; text-align: center; }
.big { position: relative; aspect-ratio: 1 / 1; background: #e9ecf1; border-radius: 4px; overflow: hidden; }
.big img { position: absolute; inset: 0; width: 100%; height: 100%; object-fit: fill; image-rendering: auto; }
.big .missing { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center; color: var(--muted); }
details { margin-top: 8px; }
pre { white-space: pre-wrap; word-break: break-all; font-size: 12px; background: #f3f5f8; padding: 6px; border-radius: 4px; }
.plist { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 10px; }
.pcard { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; }
.pcard[data-verdict="NG"] { border-color: var(--bad); }
.phead { display: flex; flex-wrap: wrap; gap: 8px; align-items: baseline; margin-bottom: 6px; }
.pcard img.composite { display: block; width: 100%; height: auto; background: #000; }
table.regions { margin-top: 6px; font-size: 12px; }
table.regions th { color: var(--muted); font-weight: 600; }
.colour-bar { height: 16px; border-radius: 3px; border: 1px solid var(--line); }
.colour-labels { display: flex; justify-content: space-between; font-size: 12px; margin-top: 2px; }
`;
