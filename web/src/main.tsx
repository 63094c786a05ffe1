import { createRoot } from 'react-dom/client';
import { App } from './App';
import { JoinPage } from './Join';
import './styles.css';

const root = document.getElementById('root');
// /join and /join/<number>: the browser's way into a meeting, no login needed
const joining = /^\/join(\/|$)/.test(window.location.pathname);
if (root) createRoot(root).render(joining ? <JoinPage /> : <App />);
