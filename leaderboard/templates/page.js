(function(){
  "use strict";
  var body=document.body;
  body.classList.add("js");
  // a phone: fold the explanations (validity details, how to read, filters, board notes) so the ranking shows first
  if(window.matchMedia&&window.matchMedia("(max-width:640px)").matches){
    Array.prototype.forEach.call(document.querySelectorAll("details.fold"),function(d){d.removeAttribute("open");});}
  function val(td,num){var v=td.getAttribute("data-v");if(v===null)v=td.textContent.trim();
    if(num){var f=parseFloat(v);return isNaN(f)?null:f;}return v.toLowerCase();}
  // sort a table on column col (dir 1 ascending, -1 descending); missing numbers always last
  function sortTable(t,col,dir){
    var ths=t.tHead.rows[0].cells,num=ths[col].getAttribute("data-type")==="num",tb=t.tBodies[0];
    var rows=Array.prototype.slice.call(tb.rows);
    rows.sort(function(a,b){var x=val(a.cells[col],num),y=val(b.cells[col],num);
      if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
      return (x<y?-1:x>y?1:0)*dir;});
    rows.forEach(function(r){tb.appendChild(r);});
    for(var i=0;i<ths.length;i++)ths[i].removeAttribute("aria-sort");
    ths[col].setAttribute("aria-sort",dir>0?"ascending":"descending");
    t.setAttribute("data-sorted",col+":"+(dir>0?"asc":"desc"));
  }
  var tables=document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables,function(t){
    var ths=t.tHead.rows[0].cells;
    Array.prototype.forEach.call(ths,function(th,i){th.addEventListener("click",function(){
      var cur=t.getAttribute("data-sorted")||"",first=(th.getAttribute("data-type")==="num"&&th.textContent.trim()!=="rank")?-1:1;
      var dir=(cur===i+":asc")?-1:(cur===i+":desc")?1:first;
      sortTable(t,i,dir);});});
    var d=t.getAttribute("data-sorted");
    if(d){var p=d.split(":");ths[+p[0]].setAttribute("aria-sort",p[1]==="asc"?"ascending":"descending");}
  });
  // filters: family / group / AT / verdict / search, and how many RobustBench rows to show
  var f={q:document.getElementById("f-q"),family:document.getElementById("f-family"),group:document.getElementById("f-group"),
         at:document.getElementById("f-at"),verdict:document.getElementById("f-verdict"),rep:document.getElementById("f-reported")};
  function applyFilters(){
    var q=f.q?f.q.value.trim().toLowerCase():"",fam=f.family?f.family.value:"",grp=f.group?f.group.value:"",
        at=f.at?f.at.value:"",ver=f.verdict?f.verdict.value:"",rep=f.rep?f.rep.value:"few";
    var trs=document.querySelectorAll("table.sortable tbody tr"),shown=0,total=0;
    Array.prototype.forEach.call(trs,function(tr){
      var reported=tr.getAttribute("data-reported")==="1",ok=true;
      var model=(tr.getAttribute("data-model")||"").toLowerCase();
      if(q&&model.indexOf(q)<0&&tr.textContent.toLowerCase().indexOf(q)<0)ok=false;
      if(reported){
        if(rep==="none"||(rep==="few"&&tr.classList.contains("more")))ok=false;
        if(fam||grp||at||(ver&&ver!=="reported"))ok=false;
      }else{
        if(fam&&tr.getAttribute("data-family")!==fam)ok=false;
        if(grp&&tr.getAttribute("data-group")!==grp)ok=false;
        if(at&&tr.getAttribute("data-at")!==at)ok=false;
        if(ver&&tr.getAttribute("data-verdict")!==ver)ok=false;
      }
      tr.classList.toggle("hidden",!ok);
      if(tr.closest("section.active")){total++;if(ok)shown++;}
    });
    var c=document.getElementById("f-count");if(c)c.textContent=shown+" of "+total+" rows shown";
  }
  Object.keys(f).forEach(function(k){if(f[k]){f[k].addEventListener("input",applyFilters);f[k].addEventListener("change",applyFilters);}});
  // tabs: one board at a time; #<tab> or #<tab>--<model> opens it (and marks the row)
  var tabs=document.querySelectorAll(".tabs a[data-tab]");
  function show(id,row){
    var found=false;
    Array.prototype.forEach.call(tabs,function(a){var on=a.getAttribute("data-tab")===id;a.setAttribute("aria-selected",on?"true":"false");
      var s=document.getElementById(a.getAttribute("data-tab"));if(s)s.classList.toggle("active",on);if(on)found=true;});
    if(!found&&tabs.length)return show(tabs[0].getAttribute("data-tab"));
    body.setAttribute("data-tab",id);
    applyFilters();
    if(row){var tr=document.getElementById(id+"--"+row);if(tr){tr.classList.add("flash");tr.scrollIntoView();}}
  }
  Array.prototype.forEach.call(tabs,function(a){a.addEventListener("click",function(e){e.preventDefault();
    var id=a.getAttribute("data-tab");show(id);if(history.replaceState)history.replaceState(null,"","#"+id);});});
  function fromHash(){var h=decodeURIComponent((location.hash||"").slice(1)),p=h.split("--");show(p[0],p[1]);}
  window.addEventListener("hashchange",fromHash);
  fromHash();
  window.addEventListener("load",function(){document.documentElement.setAttribute("data-height",
    Math.ceil(document.documentElement.scrollHeight));});
  body.setAttribute("data-js","ready");
})();
