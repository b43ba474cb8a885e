// Building the page: every node is made with createElement and text nodes, never by parsing a
// string as HTML, so nothing the server or a user typed can become markup (a test in the server
// checks that no console file uses the DOM's HTML-parsing properties and methods).

const SVG = 'http://www.w3.org/2000/svg';

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function apply(element, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'on') {
      for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    } else if (key === 'dataset') {
      Object.assign(element.dataset, value);
    } else if (key === 'value' && 'value' in element) {
      element.value = value;
    } else {
      element.setAttribute(key === 'className' ? 'class' : key, value === true ? '' : String(value));
    }
  }
}

/** An HTML element: h('button', {type: 'button', on: {click}}, 'text', child, …). */
export function h(tag, props, ...children) {
  const element = document.createElement(tag);
  apply(element, props);
  append(element, children);
  return element;
}

/** An SVG element, as h. */
export function s(tag, props, ...children) {
  const element = document.createElementNS(SVG, tag);
  apply(element, props);
  append(element, children);
  return element;
}

/** Replaces an element's children. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A table with a caption, header cells scoped to their columns, and one row per item. */
export function table(caption, headers, rows, props = {}) {
  return h('div', {class: 'table-scroll', role: 'region', 'aria-label': caption, tabindex: '0'},
    h('table', props,
      h('caption', null, caption),
      h('thead', null, h('tr', null, headers.map((header) => h('th', {scope: 'col'}, header)))),
      h('tbody', null, rows.map((cells) => h('tr', null, cells.map((cell) => h('td', null, cell)))))));
}

/** A figure: a label and a value (with the raw API value kept in data-value for tests). */
export function figure(label, text, props = {}) {
  return h('div', {class: 'figure'}, h('dt', null, label), h('dd', props, text));
}
