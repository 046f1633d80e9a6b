// pydata-sphinx-theme sets data-mode from localStorage, which is empty on a first visit, and
// then logs "Got invalid theme mode" to the console; start such a visit in "auto" mode instead.
if (!document.documentElement.dataset.mode) {
  document.documentElement.dataset.mode = "auto";
}
