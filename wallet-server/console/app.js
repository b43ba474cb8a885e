// The console's shell: login, the menu for the caller's role, hash routes (#/overview), the
// language switch, and the return to the login when the server says the session is over.

import * as api from './api.js';
import {h, replace} from './dom.js';
import {field, messageArea, showMessage, busy} from './form.js';
import {t, lang, setLang, errorText} from './i18n.js';

/** The pages of each role: [route, title key, module]. The first is where a login lands. */
const PAGES = {
  admin: [
    ['overview', 'nav.overview', () => import('./pages/overview.js')],
    ['policy', 'nav.policy', () => import('./pages/policy.js')],
    ['merchants', 'nav.merchants', () => import('./pages/merchants.js')],
    ['citizens', 'nav.citizens', () => import('./pages/citizens.js')],
    ['settlements', 'nav.settlements', () => import('./pages/settlements.js')],
    ['programs', 'nav.programs', () => import('./pages/programs.js')],
    ['audit', 'nav.audit', () => import('./pages/audit.js')],
    ['handover', 'nav.handover', () => import('./pages/handover.js')],
    ['account', 'nav.account', () => import('./pages/account.js')],
  ],
  merchant: [
    ['sales', 'nav.sales', () => import('./pages/sales.js')],
    ['payouts', 'nav.payouts', () => import('./pages/payouts.js')],
    ['account', 'nav.account', () => import('./pages/account.js')],
  ],
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let serial = 0;
/** Why the login is shown (an expired session), shown above its form once. */
let loginNotice = null;

function announce(text) {
  replace(document.getElementById('announcer'), text);
}

function routeName() {
  const match = location.hash.match(/^#\/([a-z-]+)$/);
  return match ? match[1] : null;
}

function chrome() {
  const session = api.session();
  document.documentElement.lang = lang();
  replace(document.getElementById('brand'), t(session && session.role === 'merchant' ? 'app.portal' : 'app.title'));
  replace(document.getElementById('skip-link'), t('app.skip'));
  replace(document.getElementById('footer-note'), t('app.footer'));
  const switcher = document.getElementById('lang-switch');
  replace(switcher, lang() === 'ko' ? 'English' : '한국어');
  switcher.setAttribute('lang', lang() === 'ko' ? 'en' : 'ko');
  switcher.setAttribute('aria-label', t('app.switch_language'));
  const logout = document.getElementById('logout');
  replace(logout, t('app.logout'));
  logout.hidden = !session;
  replace(document.getElementById('who'), session ? t('app.signed_in', {login: session.login, role: t('role.' + session.role)}) : '');
  nav.hidden = !session;
  nav.setAttribute('aria-label', t('app.menu'));
}

/** Shows the page of the current hash (or the login). `focus`: move focus to its heading. */
async function show(focus = true) {
  const mine = ++serial;
  chrome();
  const session = api.session();
  if (!session) return showLogin(focus);
  const pages = PAGES[session.role] || [];
  const page = pages.find(([name]) => name === routeName());
  if (!page) {
    location.replace('#/' + pages[0][0]);
    return undefined;
  }
  const [name, title, load] = page;
  replace(nav, h('ul', null, pages.map(([other, otherTitle]) =>
    h('li', null, h('a', {href: '#/' + other, 'aria-current': other === name ? 'page' : null}, t(otherTitle))))));
  document.title = `${t(title)} · ${t(session.role === 'merchant' ? 'app.portal' : 'app.title')}`;
  const heading = h('h1', {tabindex: '-1'}, t(title));
  const body = h('div', {class: 'page', 'aria-busy': 'true'}, h('p', {class: 'loading'}, t('app.loading')));
  replace(main, heading, body);
  if (focus) heading.focus();
  const context = {
    session,
    alive: () => mine === serial && api.session() === session,
    announce,
    navigate: (route) => { location.hash = '#/' + route; },
  };
  try {
    const module = await load();
    if (!context.alive()) return undefined;
    const content = h('div');
    await module.render(content, context);
    if (!context.alive()) return undefined;
    replace(body, content);
  } catch (error) {
    if (!context.alive()) return undefined;
    replace(body, h('p', {class: 'error', role: 'alert'}, errorText(error)));
  }
  body.removeAttribute('aria-busy');
  return undefined;
}

function showLogin(focus) {
  document.title = `${t('login.title')} · ${t('app.title')}`;
  replace(nav);
  const login = field({name: 'login', label: t('login.login'), props: {autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false'}, required: true});
  const password = field({name: 'password', label: t('login.password'), type: 'password', props: {autocomplete: 'current-password'}, required: true});
  const message = messageArea();
  const submit = h('button', {type: 'submit'}, t('login.submit'));
  const form = h('form', {class: 'login', novalidate: true}, login.row, password.row, submit, message);
  const heading = h('h1', {tabindex: '-1'}, t('login.title'));
  const notice = loginNotice ? h('p', {class: 'error', role: 'alert', 'data-testid': 'login-notice'}, loginNotice) : null;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!login.input.value || !password.input.value) {
      showMessage(message, {kind: 'error', text: t('login.missing')});
      return;
    }
    busy(submit, async () => {
      try {
        const session = await api.logIn(login.input.value.trim(), password.input.value);
        if (session.role !== 'admin' && session.role !== 'merchant') {
          await api.logOut();
          showMessage(message, {kind: 'error', text: t('login.citizen')});
          return;
        }
        loginNotice = null;
        // Back to the page asked for (after an expired session, where the user was), if this
        // role has it; else the role's first page.
        if (PAGES[session.role].some(([name]) => name === routeName())) show();
        else location.hash = '#/' + PAGES[session.role][0][0];
      } catch (error) {
        showMessage(message, {kind: 'error', text: loginError(error)});
        password.input.value = '';
        password.input.focus();
      }
    });
  });
  replace(main, heading, notice, h('p', null, t('login.intro')), form);
  if (focus) (loginNotice ? heading : login.input).focus();
}

function loginError(error) {
  if (error.code === 'invalid_credentials') return t('login.invalid');
  if (error.code === 'too_many_attempts') return t('login.throttled', {seconds: error.retryAfterS ?? '?'});
  return errorText(error);
}

api.onExpired(() => {
  loginNotice = t('login.expired');
  show();
});

document.getElementById('logout').addEventListener('click', async () => {
  await api.logOut();
  loginNotice = null;
  announce(t('app.logged_out'));
  show();
});

document.getElementById('lang-switch').addEventListener('click', () => {
  setLang(lang() === 'ko' ? 'en' : 'ko');
  if (loginNotice) loginNotice = t('login.expired');
  show(false);
  document.getElementById('lang-switch').focus();
});

document.getElementById('skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  const heading = main.querySelector('h1');
  (heading || main).focus();
});

window.addEventListener('hashchange', () => show());
show(false);
