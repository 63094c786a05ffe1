import { createRoot } from 'react-dom/client';
import { App } from './App';
import { JoinPage } from './Join';
import { SharedPage } from './Shared';
import { WatchPage } from './Watch';
import './styles.css';

const root = document.getElementById('root');
// /join and /join/<number>: the browser's way into a meeting, no login needed
const joining = /^\/join(\/|$)/.test(window.location.pathname);
// /watch/<key>: a live stream, for anyone with its link
const watching = /^\/watch\/[A-Za-z0-9]{1,64}\/?$/.test(window.location.pathname);
// /recording/<key>: a public recording, for anyone with its link
const shared = /^\/recording\/[A-Za-z0-9]{1,64}\/?$/.test(window.location.pathname);
if (root) createRoot(root).render(joining ? <JoinPage /> : watching ? <WatchPage /> : shared ? <SharedPage /> : <App />);
