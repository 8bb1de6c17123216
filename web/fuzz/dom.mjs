// A minimal DOM for running the web client's Markdown renderer in Node: the
// three document methods and the few element properties markdown.js uses,
// with the browser's meaning (the properties reflect to attributes). Every
// object is sealed, so anything else markdown.js might start to use, such
// as innerHTML or setAttribute, throws instead of passing unchecked.

// reflected lists the properties an element reflects to attributes, by tag
// ('*' for every element), as the HTML standard defines them.
const reflected = {
  '*': ['dir', 'className'],
  a: ['href', 'target', 'rel'],
  ol: ['start'],
};

// attributeNames maps a property to its attribute where the names differ.
const attributeNames = { className: 'class' };

class Node {
  constructor() {
    this.parentNode = null;
    this.childNodes = [];
  }

  appendChild(child) {
    if (!(child instanceof Node)) throw new TypeError('appendChild: not a node');
    if (child instanceof Fragment) {
      for (const c of [...child.childNodes]) this.appendChild(c);
      return child;
    }
    for (let p = this; p; p = p.parentNode) {
      if (p === child) throw new Error('appendChild: a node cannot contain itself');
    }
    if (child.parentNode) {
      const siblings = child.parentNode.childNodes;
      siblings.splice(siblings.indexOf(child), 1);
    }
    child.parentNode = this;
    this.childNodes.push(child);
    return child;
  }

  get textContent() {
    return this.childNodes.map((c) => c.textContent).join('');
  }

  set textContent(value) {
    for (const c of this.childNodes) c.parentNode = null;
    this.childNodes = [];
    const text = value === null || value === undefined ? '' : String(value);
    if (text !== '') this.appendChild(new Text(text));
  }
}

export class Text extends Node {
  constructor(data) {
    super();
    this.data = String(data);
    Object.seal(this);
  }

  get nodeType() { return 3; }

  get nodeName() { return '#text'; }

  get nodeValue() { return this.data; }

  get textContent() {
    return this.data;
  }

  set textContent(value) {
    this.data = String(value);
  }

  appendChild() {
    throw new Error('a text node has no children');
  }
}

export class Fragment extends Node {
  constructor() {
    super();
    Object.seal(this);
  }

  get nodeType() { return 11; }

  get nodeName() { return '#document-fragment'; }
}

export class Element extends Node {
  constructor(tag) {
    super();
    this.localName = String(tag).toLowerCase();
    this.attributes = new Map();
    for (const name of [...reflected['*'], ...(reflected[this.localName] || [])]) {
      const attr = attributeNames[name] || name;
      Object.defineProperty(this, name, {
        get: () => this.attributes.get(attr) ?? '',
        set: (value) => this.attributes.set(attr, String(value)),
      });
    }
    Object.seal(this);
  }

  get nodeType() { return 1; }

  get nodeName() { return this.localName.toUpperCase(); }
}

/** fakeDocument is the subset of document that markdown.js calls. */
export const fakeDocument = Object.freeze({
  createElement: (tag) => new Element(tag),
  createTextNode: (data) => new Text(data),
  createDocumentFragment: () => new Fragment(),
});
