// Search as you type in a long choose-from-list question (a coded substance, a medicine,
// a condition): a search box above the list narrows its options as you type. Without
// JavaScript the plain list works as it is; with it, the list stays the real form field,
// so keyboard and screen-reader use is the browser's own.
(function () {
  'use strict';
  var selects = document.querySelectorAll('select[data-search]');
  Array.prototype.forEach.call(selects, function (select) {
    var id = select.id + '-search';
    var group = document.createElement('div');
    group.className = 'nhsuk-form-group passport-search';
    var label = document.createElement('label');
    label.className = 'nhsuk-label';
    label.htmlFor = id;
    label.textContent = 'Search the list';
    var input = document.createElement('input');
    input.className = 'nhsuk-input';
    input.type = 'search';
    input.id = id;
    input.autocomplete = 'off';
    input.setAttribute('aria-controls', select.id);
    var status = document.createElement('p');
    status.className = 'nhsuk-body-s';
    status.setAttribute('role', 'status');
    status.id = select.id + '-search-status';
    group.appendChild(label);
    group.appendChild(input);
    group.appendChild(status);
    select.parentNode.insertBefore(group, select);
    input.addEventListener('input', function () {
      var q = input.value.trim().toLowerCase();
      var shown = 0;
      var last = null;
      Array.prototype.forEach.call(select.options, function (o) {
        var keep = !o.value || o.value === 'other' || !q || o.text.toLowerCase().indexOf(q) !== -1;
        o.hidden = !keep;
        if (keep && o.value && o.value !== 'other') {
          shown += 1;
          last = o;
        }
      });
      if (shown === 1 && q) {
        select.value = last.value;
      }
      status.textContent = q ? shown + (shown === 1 ? ' match' : ' matches') : '';
    });
  });
})();
