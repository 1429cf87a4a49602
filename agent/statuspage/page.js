(function(){var q=location.search,last=Date.now(),live=document.getElementById('live');
function connect(){var es=new EventSource('events'+q);
es.onmessage=function(m){var d=JSON.parse(m.data);for(var k in d.sections){var el=document.getElementById(k);
if(el&&el.innerHTML!==d.sections[k]){el.innerHTML=d.sections[k];}}last=Date.now();live.className='live';live.textContent='live';};
es.onerror=function(){live.className='live stale';live.textContent='reconnecting';};}
setInterval(function(){if(Date.now()-last>5000){live.className='live stale';live.textContent='no data '+Math.round((Date.now()-last)/1000)+' s';}},1000);
connect();})();
