/* rag chat widget: one <script> tag adds a floating chat button that asks this rag server.
 *
 *   <script src="https://rag.example.org/widget.js" data-title="Ask our docs" data-api-key="ASK_KEY"></script>
 *
 * Plain JavaScript, no build step, nothing loaded from elsewhere. Everything lives in an open shadow root on
 * <rag-widget id="rag-widget-host">, so the page's CSS cannot reach in and the widget's CSS cannot leak out.
 * Document text and model output only ever become text nodes: nothing from an answer is parsed as HTML, and
 * the only clickable things in an answer are its citation markers.
 *
 * The conversation lasts: the server stores it, and this browser keeps its id (and a random id of its own, sent
 * as X-Client-Id, which is what lets an ask key reach only this browser's conversations) in localStorage. Every
 * answer has thumbs up and down, and an optional comment, sent to /api/feedback.
 */
(function () {
  'use strict';

  var script = document.currentScript;
  if (!script || !script.src || document.getElementById('rag-widget-host')) {
    return; // no way to know the server, or the widget is already on the page
  }
  var ORIGIN = new URL(script.src, document.baseURI).origin;
  var TITLE = script.getAttribute('data-title') || 'Ask the documents';
  var KEY = script.getAttribute('data-api-key') || '';
  var MAX_HISTORY = 20; // the server accepts at most 20 earlier turns
  var STORAGE = 'rag-widget:' + ORIGIN + ':'; // one page may embed widgets of several servers
  var CITATION = /\[(\d{1,3})\]/g;

  var CSS = [
    ':host { all: initial; }',
    '*, *::before, *::after { box-sizing: border-box; }',
    '.rag-widget-root { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430; }',
    'button { font: inherit; cursor: pointer; }',
    '[hidden] { display: none !important; }',
    '#rag-widget-button { position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border: 0;',
    '  border-radius: 50%; background: #2457d6; color: #fff; box-shadow: 0 4px 14px rgba(0,0,0,.25);',
    '  display: flex; align-items: center; justify-content: center; padding: 0; }',
    '#rag-widget-button:hover { background: #1c47b3; }',
    '#rag-widget-button:focus-visible, .rag-widget-root button:focus-visible,',
    '  #rag-widget-input:focus-visible { outline: 2px solid #f0a500; outline-offset: 2px; }',
    '#rag-widget-button svg { width: 26px; height: 26px; fill: currentColor; }',
    '#rag-widget-panel { position: fixed; right: 20px; bottom: 88px; width: min(400px, calc(100vw - 40px));',
    '  height: min(580px, calc(100vh - 112px)); display: flex; flex-direction: column; background: #fff;',
    '  border: 1px solid #d5dbe5; border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.22); overflow: hidden; }',
    '.rag-widget-header { display: flex; align-items: center; gap: 8px; padding: 10px 12px; background: #2457d6;',
    '  color: #fff; }',
    '.rag-widget-title { flex: 1; font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }',
    '.rag-widget-header button { background: transparent; color: #fff; border: 1px solid rgba(255,255,255,.55);',
    '  border-radius: 6px; padding: 2px 8px; font-size: 12px; }',
    '.rag-widget-header button.rag-widget-close { border: 0; font-size: 20px; line-height: 1; padding: 0 4px; }',
    '.rag-widget-log { flex: 1; overflow-y: auto; padding: 12px; background: #f7f8fb; }',
    '.rag-widget-empty { color: #667085; }',
    '.rag-widget-turn { margin-bottom: 14px; }',
    '.rag-widget-question { margin-left: 15%; padding: 8px 10px; background: #2457d6; color: #fff;',
    '  border-radius: 10px 10px 2px 10px; white-space: pre-wrap; overflow-wrap: anywhere; }',
    '.rag-widget-answer { margin-top: 6px; margin-right: 8%; padding: 8px 10px; background: #fff;',
    '  border: 1px solid #e3e7ee; border-radius: 10px 10px 10px 2px; white-space: pre-wrap; overflow-wrap: anywhere; }',
    '.rag-widget-answer.rag-widget-pending::after { content: "\\25CF"; margin-left: 3px; color: #2457d6;',
    '  animation: rag-widget-blink 1s infinite; }',
    '@keyframes rag-widget-blink { 50% { opacity: .2; } }',
    '.rag-widget-refused { color: #5b6472; font-style: italic; }',
    '.rag-widget-unsupported { color: #92400e; font-size: 12px; margin-top: 4px; }',
    '.rag-widget-cite { display: inline; border: 0; background: #e6edff; color: #1c47b3; border-radius: 4px;',
    '  padding: 0 3px; margin: 0 1px; font-weight: 600; font-size: .9em; }',
    '.rag-widget-cite:hover, .rag-widget-cite[aria-expanded="true"] { background: #2457d6; color: #fff; }',
    '.rag-widget-rating { display: flex; flex-wrap: wrap; align-items: center; gap: 4px; margin: 4px 8% 0 0; }',
    '.rag-widget-rate { border: 1px solid transparent; background: transparent; color: #667085; border-radius: 6px;',
    '  padding: 3px 5px; line-height: 0; }',
    '.rag-widget-rate svg { width: 14px; height: 14px; fill: currentColor; }',
    '.rag-widget-rate:hover { border-color: #c8cfdb; color: #1d2430; }',
    '.rag-widget-rate[aria-pressed="true"] { color: #2457d6; border-color: #2457d6; background: #e6edff; }',
    '.rag-widget-thanks { color: #667085; font-size: 12px; }',
    '.rag-widget-comment { display: flex; gap: 4px; flex-basis: 100%; }',
    '.rag-widget-comment input { flex: 1; min-width: 0; font: inherit; font-size: 13px; padding: 3px 6px;',
    '  border: 1px solid #c8cfdb; border-radius: 6px; color: inherit; background: #fff; }',
    '.rag-widget-comment button { border: 0; border-radius: 6px; padding: 0 10px; background: #2457d6; color: #fff;',
    '  font-size: 12px; }',
    '.rag-widget-passage { margin: 6px 8% 0 0; padding: 8px 10px; border-left: 3px solid #f0a500;',
    '  background: #fffaf0; border-radius: 0 8px 8px 0; font-size: 13px; }',
    '.rag-widget-passage-head { display: flex; gap: 6px; align-items: baseline; }',
    '.rag-widget-passage-title { flex: 1; font-weight: 600; }',
    '.rag-widget-passage-close { border: 0; background: transparent; color: #667085; font-size: 16px;',
    '  line-height: 1; padding: 0 2px; }',
    '.rag-widget-passage-where { color: #667085; font-size: 12px; overflow-wrap: anywhere; }',
    '.rag-widget-original { color: #2457d6; }',
    '.rag-widget-mark { background: #ffe58f; color: #111; padding: 0 1px; }',
    '.rag-widget-passage-text { margin-top: 4px; white-space: pre-wrap; overflow-wrap: anywhere;',
    '  max-height: 220px; overflow-y: auto; }',
    '.rag-widget-status { min-height: 0; padding: 0 12px; color: #b42318; font-size: 13px; white-space: nowrap;',
    '  overflow: hidden; text-overflow: ellipsis; }',
    '.rag-widget-status:not(:empty) { padding: 6px 12px; border-top: 1px solid #f3d1cd; background: #fef3f2; }',
    '.rag-widget-form { display: flex; gap: 8px; padding: 10px 12px; border-top: 1px solid #e3e7ee; background: #fff; }',
    '#rag-widget-input { flex: 1; resize: none; height: 42px; max-height: 120px; padding: 8px 10px;',
    '  font: inherit; color: inherit; border: 1px solid #c8cfdb; border-radius: 8px; background: #fff; }',
    '#rag-widget-send { border: 0; border-radius: 8px; padding: 0 14px; background: #2457d6; color: #fff;',
    '  font-weight: 600; }',
    '#rag-widget-send:disabled { background: #9aa8c7; cursor: default; }',
    '@media (prefers-color-scheme: dark) {',
    '  .rag-widget-root { color: #e7eaf0; }',
    '  #rag-widget-panel, .rag-widget-form, #rag-widget-input { background: #1d2129; border-color: #3a4150; }',
    '  .rag-widget-log { background: #161a20; }',
    '  .rag-widget-answer { background: #232833; border-color: #3a4150; }',
    '  .rag-widget-passage { background: #2b2718; }',
    '  .rag-widget-cite { background: #2c3a5c; color: #c9d7ff; }',
    '  .rag-widget-comment input { background: #1d2129; border-color: #3a4150; }',
    '}'
  ].join('\n');

  // -- DOM helpers: text only, never markup ------------------------------------------------------------
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    var name;
    for (name in attrs || {}) {
      if (Object.prototype.hasOwnProperty.call(attrs, name)) node.setAttribute(name, attrs[name]);
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  var SVG = 'http://www.w3.org/2000/svg';
  function chatIcon() {
    var svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    var path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6.5a1.5 ' +
      '1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z');
    svg.appendChild(path);
    return svg;
  }

  // Material's thumb icons: drawn, since emoji need a font the page may not have.
  var THUMBS = {
    up: 'M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 ' +
      '7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z',
    down: 'M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 4.57-.03.32c0 ' +
      '.41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z'
  };
  function icon(d) {
    var svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    var path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    svg.appendChild(path);
    return svg;
  }

  // -- what this browser remembers (nothing, where storage is blocked: then it lasts as long as the page) ----
  function recall(name) {
    try {
      return window.localStorage.getItem(STORAGE + name) || '';
    } catch (e) {
      return '';
    }
  }

  function remember(name, value) {
    try {
      if (value) window.localStorage.setItem(STORAGE + name, value);
      else window.localStorage.removeItem(STORAGE + name);
    } catch (e) { /* storage blocked: keep it in memory only */ }
  }

  function randomId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ('0' + b.toString(16)).slice(-2); }).join('');
  }

  var CLIENT = recall('client') || randomId();
  remember('client', CLIENT);

  // -- build the widget ----------------------------------------------------------------------------------
  var host = document.createElement('rag-widget');
  host.id = 'rag-widget-host';
  // Inline and important: the page's own rules cannot hide or move the host.
  host.style.cssText = 'all: initial !important; display: block !important; position: static !important;';
  var root = host.attachShadow({ mode: 'open' });
  root.appendChild(el('style', null, CSS));

  var wrapper = el('div', { 'class': 'rag-widget-root' });
  var button = el('button', {
    id: 'rag-widget-button', type: 'button', 'aria-label': 'Open chat: ' + TITLE, title: TITLE,
    'aria-expanded': 'false', 'aria-controls': 'rag-widget-panel'
  });
  button.appendChild(chatIcon());

  var panel = el('section', { id: 'rag-widget-panel', role: 'dialog', 'aria-label': TITLE });
  panel.hidden = true;
  var header = el('div', { 'class': 'rag-widget-header' });
  var newChat = el('button', { type: 'button', 'class': 'rag-widget-new', title: 'Start a new conversation' }, 'New chat');
  var closeButton = el('button', { type: 'button', 'class': 'rag-widget-close', 'aria-label': 'Close chat' }, '\u00d7');
  header.appendChild(el('span', { 'class': 'rag-widget-title' }, TITLE));
  header.appendChild(newChat);
  header.appendChild(closeButton);

  var log = el('div', { 'class': 'rag-widget-log', 'aria-live': 'polite' });
  var status = el('div', { 'class': 'rag-widget-status', role: 'status' });
  var form = el('form', { 'class': 'rag-widget-form' });
  var input = el('textarea', {
    id: 'rag-widget-input', rows: '1', placeholder: 'Ask a question\u2026', 'aria-label': 'Your question'
  });
  var send = el('button', { id: 'rag-widget-send', type: 'submit' }, 'Ask');
  form.appendChild(input);
  form.appendChild(send);
  panel.appendChild(header);
  panel.appendChild(log);
  panel.appendChild(status);
  panel.appendChild(form);
  wrapper.appendChild(panel);
  wrapper.appendChild(button);
  root.appendChild(wrapper);

  // -- state ----------------------------------------------------------------------------------------------
  var history = []; // [{question, answer}] of finished answers: sent only if the server did not store them
  var conversationId = recall('conversation'); // the server's stored conversation this browser continues
  var restored = false; // its earlier turns are shown once, when the panel first opens
  var controller = null; // AbortController of the question being answered

  function showEmpty() {
    clear(log);
    log.appendChild(el('div', { 'class': 'rag-widget-empty' },
      'Ask a question. Answers cite their sources as [1], [2] \u2026 \u2014 click a number to read the passage.'));
  }

  function setStatus(text) {
    status.textContent = text || '';
    status.title = text || '';
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function openPanel() {
    panel.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    input.focus();
    if (!restored) restore();
  }

  function headers(json) {
    var names = { 'X-Client-Id': CLIENT };
    if (json) names['Content-Type'] = 'application/json';
    if (KEY) names.Authorization = 'Bearer ' + KEY;
    return names;
  }

  function forgetConversation() {
    conversationId = '';
    remember('conversation', '');
    history = [];
  }

  function closePanel() {
    panel.hidden = true;
    button.setAttribute('aria-expanded', 'false');
    stop(); // the server notices the closed connection and stops generating
  }

  function stop() {
    if (controller) {
      controller.abort();
      controller = null;
    }
  }

  // -- rendering ----------------------------------------------------------------------------------------
  function showPassage(box, citation, marker) {
    var open = box.getAttribute('data-n') === String(citation.number) && !box.hidden;
    var markers = box.parentNode.querySelectorAll('.rag-widget-cite');
    for (var i = 0; i < markers.length; i++) markers[i].setAttribute('aria-expanded', 'false');
    if (open) {
      box.hidden = true;
      box.removeAttribute('data-n');
      return;
    }
    clear(box);
    var head = el('div', { 'class': 'rag-widget-passage-head' });
    head.appendChild(el('span', { 'class': 'rag-widget-passage-title' }, '[' + citation.number + '] ' +
      (citation.title || citation.file || '')));
    var close = el('button', { type: 'button', 'class': 'rag-widget-passage-close', 'aria-label': 'Hide passage' },
      '\u00d7');
    close.addEventListener('click', function () {
      box.hidden = true;
      box.removeAttribute('data-n');
      marker.setAttribute('aria-expanded', 'false');
    });
    head.appendChild(close);
    box.appendChild(head);
    var place = el('div', { 'class': 'rag-widget-passage-where' });
    place.appendChild(el('span', { 'class': 'rag-widget-passage-file' }, citation.file || ''));
    var where = placeOf(citation);
    if (where) place.appendChild(el('span', { 'class': 'rag-widget-passage-page' }, ' \u00b7 ' + where));
    var original = el('a', { href: '#', 'class': 'rag-widget-original' },
      citation.page ? 'open at p. ' + citation.page : 'open the original');
    original.addEventListener('click', function (event) {
      event.preventDefault();
      openOriginal(citation);
    });
    place.appendChild(document.createTextNode(' \u00b7 '));
    place.appendChild(original);
    box.appendChild(place);
    box.appendChild(passageText(citation));
    box.setAttribute('data-n', String(citation.number));
    box.hidden = false;
    marker.setAttribute('aria-expanded', 'true');
    var mark = box.querySelector('mark');
    (mark || box).scrollIntoView({ block: 'center' }); // the cited sentence itself, not the passage's start
  }

  /** "p. 5 · 2 Design": the page(s) and section of a citation, where its document has them. */
  function placeOf(citation) {
    var page = '';
    if (citation.page) {
      page = citation.page_end && citation.page_end !== citation.page
        ? 'pp. ' + citation.page + '\u2013' + citation.page_end : 'p. ' + citation.page;
    }
    return [page, citation.section || ''].filter(Boolean).join(' \u00b7 ');
  }

  /** The original file in a new tab, at the cited page. Fetched with the key (a plain link carries none), then
   *  shown from a blob URL; the tab is opened at once, inside the click, so no pop-up blocker stops it. */
  function openOriginal(citation) {
    var tab = window.open('', '_blank');
    var headers = {};
    if (KEY) headers.Authorization = 'Bearer ' + KEY;
    fetch(ORIGIN + '/api/files/' + citation.file.split('/').map(encodeURIComponent).join('/'), { headers: headers })
      .then(function (response) {
        if (!response.ok) throw new Error('the original file is not available (' + response.status + ')');
        return response.blob();
      })
      .then(function (blob) {
        var url = URL.createObjectURL(blob) + (citation.page ? '#page=' + citation.page : '');
        if (tab) tab.location.href = url;
      })
      .catch(function (error) {
        if (tab) tab.close();
        setStatus(error.message);
      });
  }

  /** The cited passage as text, with exactly the cited sentence(s) in a <mark> (offsets are the document's). */
  function passageText(citation) {
    var node = el('div', { 'class': 'rag-widget-passage-text' });
    var passage = typeof citation.passage_text === 'string' ? citation.passage_text : '';
    var from = Number(citation.start) - Number(citation.passage_start);
    var to = Number(citation.end) - Number(citation.passage_start);
    if (!passage || !(from >= 0 && to <= passage.length && from < to)) {
      node.appendChild(el('mark', { 'class': 'rag-widget-mark' }, citation.text || ''));
      return node;
    }
    node.appendChild(document.createTextNode(passage.slice(0, from)));
    node.appendChild(el('mark', { 'class': 'rag-widget-mark' }, passage.slice(from, to)));
    node.appendChild(document.createTextNode(passage.slice(to)));
    return node;
  }

  /** The final answer: text nodes, with each [n] that names a returned citation as a button. */
  function renderAnswer(turn, result) {
    var answer = turn.answer;
    var box = turn.passage;
    var text = typeof result.answer === 'string' ? result.answer : '';
    var byNumber = {};
    (Array.isArray(result.citations) ? result.citations : []).forEach(function (c) {
      if (c && typeof c.number === 'number') byNumber[c.number] = c;
    });
    clear(answer);
    answer.classList.remove('rag-widget-pending');
    if (result.refused) answer.classList.add('rag-widget-refused');
    var last = 0;
    var match;
    CITATION.lastIndex = 0;
    while ((match = CITATION.exec(text)) !== null) {
      var citation = byNumber[Number(match[1])];
      if (!citation) continue; // an unknown number stays plain text
      answer.appendChild(document.createTextNode(text.slice(last, match.index)));
      var marker = el('button', {
        type: 'button', 'class': 'rag-widget-cite', 'data-n': String(citation.number), 'aria-expanded': 'false',
        title: 'Show passage ' + citation.number
      }, '[' + citation.number + ']');
      marker.addEventListener('click', showPassage.bind(null, box, citation, marker));
      answer.appendChild(marker);
      last = match.index + match[0].length;
    }
    answer.appendChild(document.createTextNode(text.slice(last)));
    if (!text) answer.textContent = '(no answer)';
    // Beside the answer, not in it: the answer holds only text and citation markers.
    var unsupported = Array.isArray(result.unsupported) ? result.unsupported : [];
    unsupported.forEach(function (claim) {
      if (claim && typeof claim.text === 'string') {
        turn.node.insertBefore(el('div', { 'class': 'rag-widget-unsupported', title: 'No passage backs this sentence' },
          (result.grounding === 'strict' ? '\u26a0 not in the documents: ' : '\u26a0 not backed by any passage: ') +
          claim.text), box);
      }
    });
  }

  function addTurn(question) {
    var empty = log.querySelector('.rag-widget-empty');
    if (empty) log.removeChild(empty);
    var node = el('div', { 'class': 'rag-widget-turn' });
    node.appendChild(el('div', { 'class': 'rag-widget-question' }, question));
    var answer = el('div', { 'class': 'rag-widget-answer rag-widget-pending' });
    var passage = el('div', { 'class': 'rag-widget-passage', role: 'region', 'aria-label': 'Cited passage' });
    passage.hidden = true;
    node.appendChild(answer);
    node.appendChild(passage);
    log.appendChild(node);
    scrollDown();
    return { node: node, answer: answer, passage: passage, streamed: document.createTextNode('') };
  }

  // -- feedback -----------------------------------------------------------------------------------------------
  /** Thumbs up and down under an answer the server stored, then an optional comment. */
  function addRating(turn, result) {
    var answerId = typeof result.answer_id === 'string' ? result.answer_id : '';
    if (!answerId) return;
    var bar = el('div', { 'class': 'rag-widget-rating' });
    var buttons = {};
    var rating = result.rating === 'up' || result.rating === 'down' ? result.rating : '';
    var thanks = el('span', { 'class': 'rag-widget-thanks', 'aria-live': 'polite' });
    var form = el('form', { 'class': 'rag-widget-comment' });
    var comment = el('input', { type: 'text', maxlength: '2000', placeholder: 'Say why (optional)',
      'aria-label': 'Comment on this answer' });
    form.appendChild(comment);
    form.appendChild(el('button', { type: 'submit' }, 'Send'));
    form.hidden = true;

    function show() {
      buttons.up.setAttribute('aria-pressed', String(rating === 'up'));
      buttons.down.setAttribute('aria-pressed', String(rating === 'down'));
    }

    function send(value, text) {
      var feedback = { answer_id: answerId, rating: value };
      if (text !== undefined) feedback.comment = text;
      return fetch(ORIGIN + '/api/feedback', {
        method: 'POST', headers: headers(true), body: JSON.stringify(feedback), credentials: 'omit', mode: 'cors'
      }).then(function (response) {
        if (response.ok) return true;
        return response.json().catch(function () { return null; }).then(function (body) {
          setStatus(errorText(response, body));
          return false;
        });
      }, function () {
        setStatus('Cannot reach the assistant; the rating was not sent.');
        return false;
      });
    }

    [['up', 'A good answer'], ['down', 'A wrong or unhelpful answer']].forEach(function (choice) {
      var thumb = el('button', { type: 'button', 'class': 'rag-widget-rate', 'data-rating': choice[0],
        'aria-pressed': 'false', title: choice[1], 'aria-label': choice[1] });
      thumb.appendChild(icon(THUMBS[choice[0]]));
      thumb.addEventListener('click', function () {
        send(choice[0]).then(function (ok) {
          if (!ok) return;
          rating = choice[0];
          show();
          setStatus('');
          thanks.textContent = 'Thanks!';
          form.hidden = false;
          comment.focus();
        });
      });
      buttons[choice[0]] = thumb;
      bar.appendChild(thumb);
    });
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      send(rating, comment.value.trim()).then(function (ok) {
        if (!ok) return;
        form.hidden = true;
        thanks.textContent = 'Thanks, your comment is saved.';
      });
    });
    if (rating && typeof result.comment === 'string' && result.comment) {
      thanks.textContent = '\u201c' + result.comment + '\u201d'; // a restored answer's comment, as text
    }
    bar.appendChild(thanks);
    bar.appendChild(form);
    show();
    turn.node.insertBefore(bar, turn.passage);
  }

  /** The stored conversation this browser was in, shown again (after a reload, or on another page of the site). */
  function restore() {
    restored = true;
    if (!conversationId) return;
    var wanted = conversationId;
    fetch(ORIGIN + '/api/conversations/' + encodeURIComponent(wanted), {
      headers: headers(false), credentials: 'omit', mode: 'cors'
    }).then(function (response) {
      if (response.status === 404) {
        if (conversationId === wanted) forgetConversation();
        return null;
      }
      return response.ok ? response.json() : null;
    }).then(function (stored) {
      if (!stored || !Array.isArray(stored.turns) || conversationId !== wanted || log.querySelector('.rag-widget-turn')) {
        return;
      }
      stored.turns.forEach(function (saved) {
        if (!saved || typeof saved.question !== 'string') return;
        var turn = addTurn(saved.question);
        renderAnswer(turn, saved);
        addRating(turn, saved);
        history.push({ question: saved.question, answer: typeof saved.answer === 'string' ? saved.answer : '' });
      });
      if (history.length > MAX_HISTORY) history.splice(0, history.length - MAX_HISTORY);
      scrollDown();
    }).catch(function () { /* offline: the next question still continues the conversation */ });
  }

  // -- the server's event stream ------------------------------------------------------------------------
  /** Calls onEvent(name, data) for each server-sent event read from a fetch Response body. */
  function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = '';
    var name = '';
    var data = [];

    function line(text) {
      if (text === '') {
        if (data.length) onEvent(name || 'message', data.join('\n'));
        name = '';
        data = [];
        return;
      }
      if (text.charAt(0) === ':') return; // comment (the server's keep-alive pings)
      var colon = text.indexOf(':');
      var field = colon < 0 ? text : text.slice(0, colon);
      var value = colon < 0 ? '' : text.slice(colon + 1);
      if (value.charAt(0) === ' ') value = value.slice(1);
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }

    function drain(final) {
      var breaks = /\r\n|\r|\n/g;
      var start = 0;
      var m;
      while ((m = breaks.exec(buffer)) !== null) {
        if (m[0] === '\r' && m.index === buffer.length - 1 && !final) break; // may be half of \r\n
        line(buffer.slice(start, m.index));
        start = breaks.lastIndex;
      }
      buffer = buffer.slice(start);
      if (final) {
        if (buffer) line(buffer);
        line('');
      }
    }

    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          buffer += decoder.decode();
          drain(true);
          return;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        drain(false);
        return pump();
      });
    }
    return pump();
  }

  function errorText(response, body) {
    var message = body && (typeof body.error === 'string' ? body.error : typeof body.detail === 'string' ?
      body.detail : '');
    if (response.status === 401 || response.status === 403) {
      return 'This page may not ask the assistant (' + response.status + '): check the widget\'s API key and ' +
        'the server\'s allowed origins.';
    }
    if (response.status === 429) {
      var seconds = parseInt(response.headers.get('Retry-After') || '', 10);
      return seconds > 0 ? 'The assistant is busy, retry in ' + seconds + ' s.' :
        'The assistant is busy, retry in a few seconds.';
    }
    if (response.status === 413) return message || 'That question is too long.';
    return 'The server answered ' + response.status + (message ? ': ' + message : '.');
  }

  function ask(question) {
    stop();
    setStatus('');
    var turn = addTurn(question);
    turn.answer.appendChild(turn.streamed);
    var mine = new AbortController();
    controller = mine;
    send.disabled = true;
    var finished = false;
    var sentId = conversationId;

    function fail(text) {
      turn.answer.classList.remove('rag-widget-pending');
      if (!turn.streamed.data) turn.node.removeChild(turn.answer);
      if (!input.value) input.value = question; // ready to send again
      setStatus(text);
    }

    var body = sentId ? { question: question, conversation_id: sentId } :
      { question: question, history: history.slice() };
    fetch(ORIGIN + '/api/ask', {
      method: 'POST', headers: headers(true), body: JSON.stringify(body),
      signal: mine.signal, credentials: 'omit', mode: 'cors'
    }).then(function (response) {
      if (!response.ok) {
        return response.json().catch(function () { return null; }).then(function (body) {
          if (response.status === 404 && sentId) {
            forgetConversation(); // deleted or pruned on the server: the next question starts a new one
            fail('That conversation is no longer on the server; ask again to start a new one.');
            return;
          }
          fail(errorText(response, body));
        });
      }
      return readEvents(response, function (name, data) {
        var payload;
        try {
          payload = JSON.parse(data);
        } catch (e) {
          return;
        }
        if (name === 'token' && payload && typeof payload.text === 'string') {
          turn.streamed.appendData(payload.text);
          scrollDown();
        } else if (name === 'answer' && payload) {
          finished = true;
          renderAnswer(turn, payload);
          addRating(turn, payload);
          if (typeof payload.conversation_id === 'string' && payload.conversation_id) {
            conversationId = payload.conversation_id;
            remember('conversation', conversationId);
          }
          history.push({ question: question, answer: typeof payload.answer === 'string' ? payload.answer : '' });
          if (history.length > MAX_HISTORY) history.splice(0, history.length - MAX_HISTORY);
          scrollDown();
        }
      }).then(function () {
        if (!finished) fail('The answer was cut off; ask again.');
      });
    }).catch(function (error) {
      if (error && error.name === 'AbortError') {
        turn.answer.classList.remove('rag-widget-pending');
        if (!finished) turn.streamed.appendData(turn.streamed.data ? ' \u2026 (stopped)' : '(stopped)');
        return;
      }
      fail('Cannot reach the assistant; check your connection and try again.');
    }).then(function () {
      if (controller === mine) controller = null;
      send.disabled = false;
    });
  }

  // -- events -------------------------------------------------------------------------------------------
  button.addEventListener('click', function () {
    if (panel.hidden) openPanel();
    else closePanel();
  });
  closeButton.addEventListener('click', closePanel);
  newChat.addEventListener('click', function () {
    stop();
    forgetConversation();
    setStatus('');
    showEmpty();
    input.value = '';
    input.focus();
  });
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var question = input.value.trim();
    if (!question || send.disabled) return;
    input.value = '';
    ask(question);
  });
  input.addEventListener('keydown', function (event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (typeof form.requestSubmit === 'function') form.requestSubmit();
      else form.dispatchEvent(new Event('submit', { cancelable: true }));
    }
  });
  panel.addEventListener('keydown', function (event) {
    if (event.key === 'Escape') {
      closePanel();
      button.focus();
    }
  });

  showEmpty();
  function attach() {
    document.body.appendChild(host);
  }
  if (document.body) attach();
  else document.addEventListener('DOMContentLoaded', attach);
})();
