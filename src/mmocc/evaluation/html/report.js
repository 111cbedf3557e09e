"use strict";
(() => {
  const table = document.getElementById("samples");
  const heads = Array.from(table.tHead.rows[0].cells);
  const body = table.tBodies[0];
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  const toNumber = (text) => {
    const value = parseFloat(text);
    return Number.isNaN(value) ? -Infinity : value;
  };
  const compareNumbers = (a, b) => (a > b) - (a < b);
  function sortTable(key, descending) {
    const col = heads.findIndex((th) => th.dataset.key === key);
    if (col < 0) return;
    const numeric = heads[col].dataset.type === "num";
    const keyed = Array.from(body.rows, (row) => {
      const cell = row.cells[col];
      const text = cell.dataset.v ?? cell.textContent;
      return [numeric ? toNumber(text) : text, row];
    });
    const compare = numeric ? compareNumbers : collator.compare;
    const sign = descending ? -1 : 1;
    keyed.sort((a, b) => sign * compare(a[0], b[0]));
    const fragment = document.createDocumentFragment();
    for (const [, row] of keyed) fragment.appendChild(row);
    body.appendChild(fragment);
    for (const th of heads) th.removeAttribute("aria-sort");
    heads[col].setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  function sortFromHash() {
    const match = /(?:^#|&)sort=(-?)([^&]*)/.exec(location.hash);
    if (!match) return;
    try {
      sortTable(decodeURIComponent(match[2]), match[1] === "-");
    } catch (error) {
      if (!(error instanceof URIError)) throw error;
    }
  }
  table.tHead.addEventListener("click", (event) => {
    const th = event.target.closest("th");
    if (!th || !th.dataset.key) return;
    const descending = th.getAttribute("aria-sort") === "ascending";
    sortTable(th.dataset.key, descending);
    history.replaceState(null, "", "#sort=" + (descending ? "-" : "") + encodeURIComponent(th.dataset.key));
  });
  window.addEventListener("hashchange", sortFromHash);
  sortFromHash();
})();
