// 核对进度 (console::checks): while a household check runs, ask its progress route every 500 ms
// and update each department's row; when the check has ended, load the page again (the server
// then shows the report or why it ended). Text is set with textContent only.
(function () {
  'use strict';
  var board = document.getElementById('progress');
  if (!board || !window.fetch) { return; }
  var url = board.getAttribute('data-progress');
  var status = document.getElementById('check-status');
  var body = document.querySelector('#departments tbody');
  var empty = document.getElementById('departments-empty');
  var STATUS = { running: '核对中 / running', done: '已完成 / done', failed: '未完成 / ended without a report' };

  function seconds(ms) {
    if (ms < 1000) { return ms + ' 毫秒'; }
    return Math.floor(ms / 1000) + '.' + Math.floor((ms % 1000) / 100) + ' 秒';
  }

  function show(d) {
    var tr = body.querySelector('tr[data-dept="' + d.department + '"]');
    if (!tr) {
      tr = document.createElement('tr');
      tr.setAttribute('data-dept', d.department);
      for (var i = 0; i < 3; i++) { tr.appendChild(document.createElement('td')); }
      body.appendChild(tr);
    }
    tr.cells[0].textContent = d.name_zh;
    tr.cells[1].textContent = d.state_text;
    tr.cells[1].className = 'state state-' + d.state;
    tr.cells[2].textContent = seconds(d.elapsed_ms);
  }

  function tick() {
    fetch(url, { credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) { throw new Error('HTTP ' + r.status); }
        return r.json();
      })
      .then(function (p) {
        p.departments.forEach(show);
        if (empty && p.departments.length > 0) { empty.hidden = true; }
        status.textContent = STATUS[p.status] || p.status;
        status.className = 'status status-' + p.status;
        if (p.status === 'running') {
          setTimeout(tick, 500);
        } else {
          setTimeout(function () { window.location.reload(); }, 600);
        }
      })
      .catch(function () { setTimeout(tick, 2000); });
  }

  setTimeout(tick, 500);
}());
