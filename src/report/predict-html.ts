/**
 * The page body of a `musc predict` folder (html.ts puts it between the header and the data):
 * the threshold panel (slider, NG/OK counts, NG list export, threshold file download), the colour
 * scale, a verdict filter and one card per image (verdict, scores, composite, regions table).
 * The page script (page/predict.ts) fills it.
 */
export const PREDICT_BODY = `<main>
<h2 id="cat-title">Predictions</h2>
<section id="pthreshold" class="panel threshold">
  <h3>Threshold</h3>
  <div class="thr-row">
    <div class="slider-wrap"><input id="pthr-range" type="range" min="0" max="1000" step="1" value="0" aria-label="threshold"></div>
    <label>score &ge; <input id="pthr-value" type="number" step="any" aria-label="threshold value"></label>
    <button id="pthr-reset" type="button" title="the image threshold musc predict used">predict's</button>
    <div class="counts"><span><span class="pill ng">NG</span> <b id="pcount-ng">0</b></span>
      <span><span class="pill ok">OK</span> <b id="pcount-ok">0</b></span></div>
    <button id="export-ng" type="button" title="name,score,normalized,regions of the NG images at this threshold">
      export NG list as CSV</button>
    <button id="save-threshold" type="button" title="a threshold.json that musc predict --threshold FILE reads back">save threshold</button>
  </div>
  <p id="pthr-notes" class="note"></p>
</section>
<div class="panels">
  <section id="colour-scale" class="panel"><h3>Colour scale</h3></section>
  <section id="pinfo" class="panel"><h3>Run</h3></section>
</div>
<div class="controls">
  <label>Verdict <select id="pfilter">
    <option value="">all</option><option value="NG">NG</option><option value="OK">OK</option></select></label>
  <span id="pcount" class="note"></span>
</div>
<div id="plist" class="plist"></div>
</main>
`;
